"""Which log-mel grid for audio: two settings, measured on voices never heard in training.

espeak-ng says "zero" .. "nine" in 60 voices (examples/spoken_digits.py); the
jobs train on 48 voices and embed the other 12. Reported: 5-NN accuracy
(leave-one-out among the held-out clips) and cluster purity (k = 10), for
two voice samples (seeds), per grid.

    python -m bench.audio_grid [--workdir bench/work]

Writes bench/results/audio_grid.json; bench/audio_grid.md quotes it.
"""

from __future__ import annotations

import argparse
import pathlib
import time

from bench import record
from embedbeam.pipeline import cli
from embedbeam.pipeline.queries.summary import summarize
from examples.spoken_digits import voices, write_spoken_digits

GRIDS = {
    "32 mels x 24 slices, -40 dB": ["--mels", "32", "--frames", "24", "--threshold-db", "-40"],
    "64 mels x 48 slices, -40 dB": ["--mels", "64", "--frames", "48", "--threshold-db", "-40"],
    "32 mels x 24 slices, -60 dB": ["--mels", "32", "--frames", "24", "--threshold-db", "-60"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=pathlib.Path, default=pathlib.Path("bench/work"))
    args = parser.parse_args()
    results = {"date": time.strftime("%Y-%m-%d"), "runs": []}
    for seed in (0, 1):
        root = args.workdir / f"spoken-seed{seed}"
        if not root.exists():
            speakers = voices(60, seed=seed)
            write_spoken_digits(root / "train", speakers[:48])
            write_spoken_digits(root / "test", speakers[48:])
        for grid, flags in GRIDS.items():
            model, out = (
                root / f"model-{len(results['runs'])}",
                root / f"out-{len(results['runs'])}",
            )
            train = ["train", "--modality", "audio", "--input", f"{root}/train/*/*.wav"]
            assert 0 == cli.main([*train, "--output", str(model), "--overwrite", *flags])
            embed = ["embed", "--model", str(model), "--input", f"{root}/test/*/*.wav"]
            assert 0 == cli.main([*embed, "--output", str(out), "--overwrite"])
            summary = summarize(str(out))
            results["runs"].append(
                {
                    "grid": grid,
                    "voice_seed": seed,
                    "knn5_accuracy": summary["audio"]["knn5_accuracy"],
                    "cluster_purity": summary["audio"]["cluster_purity"],
                    "embed_items_per_s": summary["items_per_s"],
                }
            )
    record("audio_grid", results)


if __name__ == "__main__":
    main()
