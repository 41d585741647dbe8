"""One space for digits seen, heard and written: cross-modal figures of joint models.

    python -m bench.joint_space [--workdir bench/work/joint] [--train-images N]

Data (examples/joint_digits.py): 20,000 MNIST training digits (or N), 8 espeak-ng voices
in each of five languages, the digit words of en/de/fr/es; held out: 1,000 MNIST
test digits, 2 more voices per language, the three real speakers, and the
words of all five languages (Italian never trained on). Trains joint models
with the real CLI (softmax with char n-grams, softmax with word tokens only,
softmax + supervised contrastive), embeds the held-out tree with each, and
single-modality models on the same rows for the 5-NN comparison. Writes
bench/results/joint_space.json (joint_space-images-N.json, the default loss
only, for another N); bench/joint_space.md quotes it.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import time

import numpy as np

from embedbeam.pipeline import cli
from embedbeam.pipeline.model.quality import leave_one_out_knn_accuracy
from embedbeam.pipeline.queries.cross_modal import cross_modal_matrix, purity_over_all
from embedbeam.pipeline.queries.table import load_table, modalities
from examples.joint_digits import (
    JointSplit,
    accuracy_by_source,
    without_real_speakers,
    write_joint_digits,
)

RESULTS_DIR = pathlib.Path(__file__).parent / "results"
REPORT = pathlib.Path(__file__).parent / "joint_space.md"
EXTENSIONS = {"image": "png", "audio": "wav", "text": "txt"}
DEFAULT_LOSS = "softmax + 0.5 supervised contrastive, char n-grams 2:4"
JOINT_MODELS = {
    "softmax, char n-grams 2:4": ["--char-ngrams", "2:4", "--contrastive-weight", "0"],
    "softmax, word tokens": ["--contrastive-weight", "0"],
    DEFAULT_LOSS: [
        "--char-ngrams", "2:4", "--contrastive-weight", "0.5",
    ],
    "softmax + 1.0 supervised contrastive, char n-grams 2:4, 16 epochs": [
        "--char-ngrams", "2:4", "--contrastive-weight", "1.0", "--epochs", "16",
    ],
}  # fmt: skip


def cross_modal_figures(output_dir: str) -> dict:
    """For a committed joint table: per (query modality, gallery modality) the label
    accuracy of the nearest gallery row, over every row and without the real speakers,
    also per query source (language, speaker); each modality's own leave-one-out 5-NN;
    cluster purity over all modalities, with and without the real speakers."""
    tables = {modality: load_table(output_dir, modality) for modality in modalities(output_dir)}
    return {
        "nearest_label_accuracy": {
            f"{query}->{gallery}": round(value, 4)
            for (query, gallery), value in cross_modal_matrix(tables).items()
        },
        "nearest_label_accuracy_without_real_speakers": {
            f"{query}->{gallery}": round(value, 4)
            for (query, gallery), value in cross_modal_matrix(without_real_speakers(tables)).items()
        },
        "by_source": {
            pair: {source: round(value, 4) for source, value in sources.items()}
            for pair, sources in accuracy_by_source(tables).items()
        },
        "knn5_own": {
            modality: round(
                leave_one_out_knn_accuracy(table.embeddings, np.asarray(table.labels)), 4
            )
            for modality, table in tables.items()
        },
        "cluster_purity_all": round(purity_over_all(tables), 4),
        "cluster_purity_without_real_speakers": round(
            purity_over_all(without_real_speakers(tables)), 4
        ),
    }


def _run(args: list[str]) -> None:
    status = cli.main(args)
    if status != 0:
        raise SystemExit(f"embedbeam {' '.join(args)} failed with status {status}")


def train_and_embed(workdir: pathlib.Path, name: str, train_flags: list[str], pattern: str) -> str:
    model, out = workdir / "models" / name, workdir / "out" / name
    started = time.time()
    _run(["train", *train_flags, "--input", pattern.format(split="train"), "--output", str(model),
          "--overwrite"])  # fmt: skip
    trained = time.time()
    _run(["embed", "--model", str(model), "--input", pattern.format(split="test"),
          "--output", str(out), "--overwrite"])  # fmt: skip
    print(f"{name}: train {trained - started:.0f} s, embed {time.time() - trained:.0f} s")
    return str(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=pathlib.Path, default=pathlib.Path("bench/work/joint"))
    parser.add_argument(
        "--train-images",
        type=int,
        default=JointSplit.train_images,
        help="MNIST training digits in the split; another count than the default writes "
        "joint_space-images-N.json and runs the default loss only",
    )
    args = parser.parse_args(argv)
    default = args.train_images == JointSplit.train_images
    workdir = args.workdir if default else args.workdir / f"images-{args.train_images}"
    data = workdir / "data"
    if not (data / ".complete").exists():
        write_joint_digits(data, JointSplit(train_images=args.train_images))
        (data / ".complete").touch()
    results: dict = {"joint": {}, "single": {}}
    models = JOINT_MODELS if default else {DEFAULT_LOSS: JOINT_MODELS[DEFAULT_LOSS]}
    for index, (name, flags) in enumerate(models.items()):
        out = train_and_embed(
            workdir, f"joint{index}", ["--modality", "joint", *flags], f"{data}/{{split}}/**"
        )
        results["joint"][name] = cross_modal_figures(out)
    for modality, extension in EXTENSIONS.items():
        flags = ["--modality", modality] + (["--char-ngrams", "2:4"] if modality == "text" else [])
        out = train_and_embed(workdir, modality, flags, f"{data}/{{split}}/*/*.{extension}")
        results["single"][modality] = cross_modal_figures(out)["knn5_own"][modality]
    results_path = RESULTS_DIR / (
        "joint_space.json" if default else f"joint_space-images-{args.train_images}.json"
    )
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    results_path.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(json.dumps(results, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
