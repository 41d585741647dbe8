"""One space for digits seen, heard and written: cross-modal figures of joint models.

    python -m bench.joint_space [--workdir bench/work/joint_space]

Data (examples/joint_digits.py): 3,000 MNIST training digits, 8 espeak-ng voices
in each of five languages, the digit words of en/de/fr/es; held out: 1,000 MNIST
test digits, 2 more voices per language, the three real speakers, and the
words of all five languages (Italian never trained on). Trains joint models
with the real CLI (softmax with char n-grams, softmax with word tokens only,
softmax + supervised contrastive), embeds the held-out tree with each, and
single-modality models on the same rows for the 5-NN comparison. Writes
bench/results/joint_space.json and bench/joint_space.md.
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
from examples.joint_digits import source_of, write_joint_digits

RESULTS = pathlib.Path(__file__).parent / "results" / "joint_space.json"
REPORT = pathlib.Path(__file__).parent / "joint_space.md"
EXTENSIONS = {"image": "png", "audio": "wav", "text": "txt"}
JOINT_MODELS = {
    "softmax, char n-grams 2:4": ["--char-ngrams", "2:4", "--contrastive-weight", "0"],
    "softmax, word tokens": ["--contrastive-weight", "0"],
    "softmax + 0.5 supervised contrastive, char n-grams 2:4": [
        "--char-ngrams", "2:4", "--contrastive-weight", "0.5",
    ],
    "softmax + 1.0 supervised contrastive, char n-grams 2:4, 16 epochs": [
        "--char-ngrams", "2:4", "--contrastive-weight", "1.0", "--epochs", "16",
    ],
}  # fmt: skip


def cross_modal_figures(output_dir: str) -> dict:
    """For a committed joint table: per (query modality, gallery modality) the label
    accuracy of the nearest gallery row, also per query source (language, speaker); each
    modality's own leave-one-out 5-NN; cluster purity over all rows."""
    tables = {modality: load_table(output_dir, modality) for modality in modalities(output_dir)}
    figures: dict = {
        "nearest_label_accuracy": {
            f"{query}->{gallery}": round(value, 4)
            for (query, gallery), value in cross_modal_matrix(tables).items()
        },
        "by_source": {},
        "knn5_own": {
            modality: round(
                leave_one_out_knn_accuracy(table.embeddings, np.asarray(table.labels)), 4
            )
            for modality, table in tables.items()
        },
        "cluster_purity_all": round(purity_over_all(tables), 4),
    }
    for query_modality, query in tables.items():
        sources = np.array([source_of(uri) for uri in query.uris])
        for source in sorted(set(sources.tolist()) - {"image"}):
            rows = query.take(np.flatnonzero(sources == source))
            for (_, gallery), value in cross_modal_matrix({**tables, query_modality: rows}).items():
                if _ == query_modality:
                    pair = f"{query_modality}->{gallery}"
                    figures["by_source"].setdefault(pair, {})[source] = round(value, 4)
    return figures


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
    args = parser.parse_args(argv)
    data = args.workdir / "data"
    if not (data / ".complete").exists():
        write_joint_digits(data)
        (data / ".complete").touch()
    results: dict = {"joint": {}, "single": {}}
    for index, (name, flags) in enumerate(JOINT_MODELS.items()):
        out = train_and_embed(
            args.workdir, f"joint{index}", ["--modality", "joint", *flags], f"{data}/{{split}}/**"
        )
        results["joint"][name] = cross_modal_figures(out)
    for modality, extension in EXTENSIONS.items():
        flags = ["--modality", modality] + (["--char-ngrams", "2:4"] if modality == "text" else [])
        out = train_and_embed(args.workdir, modality, flags, f"{data}/{{split}}/*/*.{extension}")
        results["single"][modality] = cross_modal_figures(out)["knn5_own"][modality]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(json.dumps(results, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
