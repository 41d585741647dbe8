"""Which speech grid recognises digits read by real people: grids and data, one speaker out.

Training data: espeak-ng voices in English, German, French, Spanish and Italian
(examples/spoken_digits.py; DATA: the default palette of 12 variants with one
seeded augmented copy of each clip, or every variant, slower speeds and wider
pitches with three copies; examples/audio_augment.py), and the three real
speakers of Debian's Asterisk prompts (examples/real_speakers.py) with 30
augmented copies of each clip. The unheard voices are the same for every row. Each
fold trains without one real speaker (or without all three: espeak-ng only) and
embeds that speaker's ten clips beside espeak-ng voices never heard in training.
Reported per fold: for each held-out speaker, the share of its clips whose
nearest held-out espeak-ng clip in the speaker's language carries its digit
(1-NN), and 5-NN accuracy (leave-one-out) among the held-out espeak-ng clips.

    python -m bench.audio_voices [--workdir bench/work/voices] [--data 1] [--grids 2 4]
        [--folds fr-armelle it-menardi es-co]

Writes bench/results/audio_voices.json; bench/audio_voices.md quotes it.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import pathlib
import time

import numpy as np
import pyarrow.dataset as ds

from bench import RESULTS_DIR, record
from embedbeam.pipeline import cli
from embedbeam.pipeline.model.quality import leave_one_out_knn_accuracy
from embedbeam.transforms.table.layout import vectors
from examples.audio_augment import write_augmented
from examples.real_speakers import SPEAKERS, real_speaker_accuracy, write_real_digits
from examples.spoken_digits import (
    WIDE_PITCHES,
    WIDE_SPEEDS,
    Palette,
    every_variant,
    voices_per_language,
    write_spoken_digits,
)

TRAIN_VOICES, TEST_VOICES = 24, 8  # per language
REAL_COPIES = 30


@dataclasses.dataclass(frozen=True)
class TrainingData:
    """The espeak-ng voices (the test voices are drawn from the same palette) and how many
    augmented copies of each of their clips are trained on."""

    palette: Palette
    espeak_copies: int


DATA = {
    "12 variants, speeds 120-185, 1 copy": lambda: TrainingData(Palette(), 1),
    "99 variants, speeds 80-185, pitches 10-90, 3 copies": lambda: TrainingData(
        Palette(every_variant(), WIDE_SPEEDS, WIDE_PITCHES), 3
    ),
}
GRIDS = {
    "earlier: 32 x 24 peak cells, 0-8 kHz, equal durations": [
        "--mels", "32", "--frames", "24", "--cells", "peak", "--fmin", "0", "--fmax", "8000",
        "--loudness-slices-db", "0", "--trim", "samples",
    ],
    "32 x 24 peak cells, 100-3800 Hz, equal durations": [
        "--mels", "32", "--frames", "24", "--cells", "peak", "--loudness-slices-db", "0",
        "--trim", "samples",
    ],
    "20 x 16 band deviations, 100-3800 Hz, equal loudness": ["--trim", "samples"],
    "32 x 24 peak cells, 100-3800 Hz, equal durations, band trim": [
        "--mels", "32", "--frames", "24", "--cells", "peak", "--loudness-slices-db", "0",
        "--trim", "band",
    ],
    "20 x 16 band deviations, 100-3800 Hz, equal loudness, band trim": ["--trim", "band"],
    "20 x 16 and 20 x 4 band deviations, 100-3800 Hz, equal loudness": [
        "--cells", "band_deviations_two_scales", "--trim", "samples",
    ],
}  # fmt: skip
FOLDS = [speaker.name for speaker in SPEAKERS] + ["all three"]
RESULTS = RESULTS_DIR / "audio_voices.json"


def materialize(root: pathlib.Path, data: TrainingData) -> None:
    """The test voices are those of the default palette whatever `data` trains on, so that
    every row is measured on the same unheard voices."""
    if (root / ".complete").exists():
        return
    default = voices_per_language(TRAIN_VOICES + TEST_VOICES)
    drawn = voices_per_language(TRAIN_VOICES + TEST_VOICES, palette=data.palette)
    for language, chosen in default.items():
        test = chosen[TRAIN_VOICES:]
        write_spoken_digits(root / "test", test)
        write_spoken_digits(
            root / "espeak",
            [voice for voice in drawn[language] if voice not in test][:TRAIN_VOICES],
        )
    write_augmented(
        sorted((root / "espeak").glob("*/*.wav")), root / "espeak_augmented", data.espeak_copies
    )
    real = write_real_digits(root / "real")
    write_augmented(real, root / "real_augmented", REAL_COPIES)
    (root / ".complete").touch()


def write_manifest(path: pathlib.Path, clips: list[pathlib.Path]) -> str:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["uri", "label"])
        writer.writerows([str(clip.resolve()), clip.parent.name] for clip in clips)
    return str(path)


def measure_fold(root: pathlib.Path, run: pathlib.Path, held_out: str, flags: list[str]) -> dict:
    """Trains without `held_out` (a speaker, or all three), embeds the test clips."""
    kept = [
        clip
        for clip in sorted((root / "real").glob("*/*.wav"))
        + sorted((root / "real_augmented").glob("*/*.wav"))
        if held_out != "all three" and clip.stem.split("~")[0] != held_out
    ]
    espeak = sorted((root / "espeak").glob("*/*.wav"))
    espeak += sorted((root / "espeak_augmented").glob("*/*.wav"))
    test = sorted((root / "test").glob("*/*.wav")) + [
        clip
        for clip in sorted((root / "real").glob("*/*.wav"))
        if held_out in (clip.stem, "all three")
    ]
    run.mkdir(parents=True, exist_ok=True)
    train = write_manifest(run / "train.csv", espeak + kept)
    model, out = run / "model", run / "out"
    train_flags = ["--modality", "audio", "--manifest", train, "--output", str(model)]
    assert cli.main(["train", *train_flags, "--overwrite", *flags]) == 0
    embed_flags = ["--model", str(model), "--manifest", write_manifest(run / "test.csv", test)]
    assert cli.main(["embed", *embed_flags, "--output", str(out), "--overwrite"]) == 0
    table = ds.dataset(out / "embeddings", partitioning="hive").to_table()
    uris, labels = table.column("uri").to_pylist(), np.asarray(table.column("label").to_pylist())
    embeddings = vectors(table.column("embedding"))
    synthetic = np.array(["+" in pathlib.PurePosixPath(uri).stem for uri in uris])
    return {
        "held_out": held_out,
        "real_speaker_1nn": real_speaker_accuracy(uris, labels, embeddings),
        "espeak_unheard_knn5": leave_one_out_knn_accuracy(embeddings[synthetic], labels[synthetic]),
        "train_clips": len(espeak) + len(kept),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=pathlib.Path, default=pathlib.Path("bench/work/voices"))
    parser.add_argument("--embedding-dim", default="16", help="passed to train (auto or N)")
    parser.add_argument(
        "--grids",
        type=int,
        nargs="+",
        default=list(range(len(GRIDS))),
        help="indices into GRIDS to run (default: all); the recorded runs of the others are kept",
    )
    parser.add_argument(
        "--data", type=int, default=0, choices=range(len(DATA)), help="index into DATA"
    )
    parser.add_argument("--folds", nargs="+", default=FOLDS, choices=FOLDS, help="folds to run")
    args = parser.parse_args()
    data_name = list(DATA)[args.data]
    root = args.workdir / ("clips" if args.data == 0 else f"clips-data{args.data}")
    materialize(root, DATA[data_name]())
    results = {"date": time.strftime("%Y-%m-%d"), "embedding_dim": args.embedding_dim, "runs": []}
    chosen = {
        (data_name, grid, held_out)
        for index, grid in enumerate(GRIDS)
        if index in args.grids
        for held_out in args.folds
    }
    for index, (grid, flags) in enumerate(GRIDS.items()):
        for held_out in [fold for fold in FOLDS if (data_name, grid, fold) in chosen]:
            name = f"data{args.data}-grid{index}-{held_out.replace(' ', '_')}"
            fold = measure_fold(
                root, args.workdir / name, held_out, [*flags, "--embedding-dim", args.embedding_dim]
            )
            results["runs"].append({"data": data_name, "grid": grid, **fold})
            print(data_name, grid, fold, flush=True)
    if RESULTS.exists():  # read last, so that runs recorded meanwhile are kept too
        for run in json.loads(RESULTS.read_text())["runs"]:
            run = {"data": list(DATA)[0], **run}  # runs from before the data settings
            if run["grid"] in GRIDS and (run["data"], run["grid"], run["held_out"]) not in chosen:
                results["runs"].append(run)
    results["runs"].sort(
        key=lambda run: (
            list(DATA).index(run["data"]),
            list(GRIDS).index(run["grid"]),
            FOLDS.index(run["held_out"]),
        )
    )
    record("audio_voices", results)


if __name__ == "__main__":
    main()
