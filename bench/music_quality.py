"""Which audio settings for music: GM families of fluidsynth phrases, on held-out phrases and programs.

examples/music_phrases.py renders 8 families x 8 programs; the jobs train on 6
programs per family (12 clips each) and embed (a) 4 clips of every trained
program playing phrases and root pitches never trained on, and (b) 4 clips of
each of the 2 held-out programs per family. Reported per setting: 5-NN
accuracy (leave-one-out among the embedded clips) and cluster purity, both
through `embedbeam train` / `embed`: the peak grid kept before, and the
band-summary cells (each mel band's mean, maximum and 10th percentile) at
train's default early stopping and a longer one, with and without the
supervised-contrastive term, the kept flags at three training seeds, and at
fewer mel bands.

    python -m bench.music_quality [--workdir bench/work]

Writes bench/results/music_quality.json; bench/music_quality.md quotes it.
"""

from __future__ import annotations

import argparse
import pathlib
import time

from bench import record
from embedbeam.pipeline import cli
from embedbeam.pipeline.queries.summary import summarize
from examples.music_phrases import TRAIN_FLAGS, MusicSplits, music_splits, write_music

HELD_OUT = ("held_out_phrases", "held_out_programs")
_BAND_SUMMARY = [
    "--cells", "band_summary", "--fmin", "0", "--fmax", "8000", "--threshold-db", "-60",
    "--embedding-dim", "16", "--epochs", "200",
]  # fmt: skip
SETTINGS = {
    "before: peak cells, 64 mels x 8 slices, -80 dB, d 16, 60 epochs, contrastive 0.5": [
        "--cells", "peak", "--fmin", "0", "--fmax", "8000", "--loudness-slices-db", "0",
        "--mels", "64", "--frames", "8", "--threshold-db", "-80",
        "--embedding-dim", "16", "--epochs", "60", "--contrastive-weight", "0.5",
    ],
    "band summary, 64 mels, d 16, patience 2": [*_BAND_SUMMARY, "--mels", "64"],
    "band summary, 64 mels, d 16, patience 20": [
        *_BAND_SUMMARY, "--mels", "64", "--patience", "20",
    ],
    "band summary, 64 mels, d 16, patience 2, contrastive 0.5": [
        *_BAND_SUMMARY, "--mels", "64", "--contrastive-weight", "0.5",
    ],
    "kept (TRAIN_FLAGS): band summary, 64 mels, d 16, patience 20, contrastive 0.5": TRAIN_FLAGS,
    "the kept flags, training seed 1": [*TRAIN_FLAGS, "--seed", "1"],
    "the kept flags, training seed 2": [*TRAIN_FLAGS, "--seed", "2"],
    "the kept flags at 32 mels": [*TRAIN_FLAGS, "--mels", "32"],
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
    record("music_quality", results)


if __name__ == "__main__":
    main()
