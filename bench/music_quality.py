"""Which audio settings for music: GM families of fluidsynth phrases, on held-out phrases and programs.

examples/music_phrases.py renders 8 families x 8 programs; the jobs train on 6
programs per family (12 clips each) and embed (a) 4 clips of every trained
program playing phrases and root pitches never trained on, and (b) 4 clips of
each of the 2 held-out programs per family. Reported per setting: 5-NN
accuracy (leave-one-out among the embedded clips) and cluster purity, both
through `embedbeam train` / `embed`.

Besides the flags the jobs have, one prototype featurizer is measured here by
fitting the encoder directly (pipeline/model/encoder.py): the clip's long-term
spectrum (mean, maximum and 10th percentile of each mel band), with train's
early stopping (patience 2) and with a longer one (patience 20).

    python -m bench.music_quality [--workdir bench/work]

Writes bench/results/music_quality.json; bench/music_quality.md quotes it.
"""

from __future__ import annotations

import argparse
import pathlib
import time

import numpy as np

from bench import record
from embedbeam.pipeline import cli
from embedbeam.pipeline.queries.summary import summarize
from examples.music_phrases import TRAIN_FLAGS, MusicSplits, music_splits, write_music

HELD_OUT = ("held_out_phrases", "held_out_programs")
_PEAK_FULL_BAND = ["--cells", "peak", "--fmin", "0", "--fmax", "8000", "--loudness-slices-db", "0"]
SETTINGS = {
    "32 mels x 24 slices, -60 dB, d auto (5), 8 epochs": [
        *_PEAK_FULL_BAND, "--mels", "32", "--frames", "24", "--threshold-db", "-60",
    ],
    "32 mels x 24 slices, -60 dB, d 16, 60 epochs": [
        *_PEAK_FULL_BAND, "--mels", "32", "--frames", "24", "--threshold-db", "-60",
        "--embedding-dim", "16", "--epochs", "60",
    ],
    "64 mels x 8 slices, -80 dB, d 16, 60 epochs": [
        *_PEAK_FULL_BAND, "--mels", "64", "--frames", "8", "--threshold-db", "-80",
        "--embedding-dim", "16", "--epochs", "60",
    ],
    "kept (examples/music_phrases.py TRAIN_FLAGS): the same, --contrastive-weight 0.5": TRAIN_FLAGS,
}  # fmt: skip


def materialize(root: pathlib.Path, splits: MusicSplits) -> None:
    if not (root / ".complete").exists():
        for split in ("train", *HELD_OUT):
            write_music(root / split, getattr(splits, split))
        (root / ".complete").touch()


def measure_flags(root: pathlib.Path, name: str, flags: list[str]) -> dict:
    model = root / f"model-{name}"
    train = ["train", "--modality", "audio", "--input", f"{root}/train/*/*.wav"]
    assert cli.main([*train, "--output", str(model), "--overwrite", *flags]) == 0
    measured = {}
    for split in HELD_OUT:
        out = root / f"out-{name}-{split}"
        embed = ["embed", "--model", str(model), "--input", f"{root}/{split}/*/*.wav"]
        assert cli.main([*embed, "--output", str(out), "--overwrite"]) == 0
        summary = summarize(str(out))
        measured[split] = {
            "knn5_accuracy": summary["audio"]["knn5_accuracy"],
            "cluster_purity": summary["audio"]["cluster_purity"],
        }
    return measured


def long_term_spectrum(samples: np.ndarray, mels: int = 64, threshold_db: float = -60.0):
    """Prototype: mean, maximum and 10th percentile of each mel band over the trimmed clip,
    in dB under the clip's loudest, as the loud cells of a mels x 3 grid."""
    import librosa

    from embedbeam.transforms.sparse import SparseFeatures

    voiced, _ = librosa.effects.trim(samples, top_db=30)
    power = librosa.feature.melspectrogram(
        y=voiced, sr=16_000, n_mels=mels, n_fft=512, hop_length=160
    )
    db = librosa.power_to_db(power, ref=np.max)
    grid = np.stack([db.mean(axis=1), db.max(axis=1), np.percentile(db, 10, axis=1)], axis=1)
    grid -= grid.max()
    ids = np.flatnonzero(grid > threshold_db)
    weights = 1.0 - grid.ravel()[ids] / threshold_db
    return SparseFeatures(ids.astype(np.int64), weights.astype(np.float32))


def measure_prototype(root: pathlib.Path, patiences: tuple[int, ...]) -> dict[str, dict]:
    """The long-term spectrum, fitted as train fits (same encoder, d 16), per patience."""
    import librosa
    from sklearn.cluster import KMeans

    from embedbeam.pipeline.model import encoder as encoder_lib
    from embedbeam.pipeline.model.quality import cluster_purity, leave_one_out_knn_accuracy
    from embedbeam.transforms.sparse import SparseRows

    rows, labels = {}, {}
    for split in ("train", *HELD_OUT):
        paths = sorted((root / split).glob("*/*.wav"))
        rows[split] = SparseRows.stack(
            [long_term_spectrum(librosa.load(path, sr=16_000)[0]) for path in paths]
        )
        labels[split] = np.array([path.parent.name for path in paths])
    families = sorted(set(labels["train"]))
    label_ids = np.array([families.index(label) for label in labels["train"]])
    order = np.random.default_rng(0).permutation(label_ids.size)
    validation, fit = order[: label_ids.size // 10], order[label_ids.size // 10 :]
    results = {}
    for patience in patiences:
        config = encoder_lib.TrainingConfig(epochs=200, patience=patience)
        encoder = encoder_lib.fit_encoder(
            rows["train"].take(fit), label_ids[fit], 64 * 3, 16, len(families), config,
            (rows["train"].take(validation), label_ids[validation]),
        )  # fmt: skip
        centroids = KMeans(len(families), n_init=10, random_state=0).fit(
            encoder_lib.embed_rows(encoder.embed, rows["train"])
        )
        measured = {}
        for split in HELD_OUT:
            embeddings = encoder_lib.embed_rows(encoder.embed, rows[split])
            measured[split] = {
                "knn5_accuracy": round(leave_one_out_knn_accuracy(embeddings, labels[split]), 4),
                "cluster_purity": round(
                    cluster_purity(centroids.predict(embeddings), labels[split]), 4
                ),
            }
        results[f"prototype: long-term spectrum 64 x 3, d 16, patience {patience}"] = measured
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=pathlib.Path, default=pathlib.Path("bench/work"))
    parser.add_argument("--seed", type=int, default=0, help="Seed of the clips and the split.")
    args = parser.parse_args()
    root = args.workdir / f"music-seed{args.seed}"
    splits = music_splits(seed=args.seed)
    materialize(root, splits)
    results = {
        "date": time.strftime("%Y-%m-%d"),
        "clips": {split: len(getattr(splits, split)) for split in ("train", *HELD_OUT)},
        "settings": {},
    }
    for index, (name, flags) in enumerate(SETTINGS.items()):
        results["settings"][name] = measure_flags(root, str(index), flags)
    results["settings"].update(measure_prototype(root, (2, 20)))
    record("music_quality", results)


if __name__ == "__main__":
    main()
