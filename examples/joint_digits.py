"""Digits seen, heard and written, in one folder tree for a joint model.

    ROOT/train/<word>/image-<i>.png        MNIST training digits (20,000)
    ROOT/train/<word>/<voice>.wav          espeak-ng voices in five languages
    ROOT/train/<word>/<language>.txt       digit words of the training languages
    ROOT/test/<word>/...                   MNIST test digits, voices never heard in
                                           training, the real speakers, and every
                                           language's digit words (the held-out one too)

The label is the English digit word (`seven`) for every modality, as in
examples/spoken_digits.py. The pieces come from examples/digits.py,
spoken_digits.py, real_speakers.py and digit_words.py; nothing else.
"""

from __future__ import annotations

import dataclasses
import pathlib

import numpy as np

from embedbeam.pipeline.queries.cross_modal import cross_modal_matrix
from embedbeam.pipeline.queries.table import EmbeddingTable
from examples.digit_words import LANGUAGES, write_digit_words
from examples.digits import digit_png, mnist_split
from examples.real_speakers import SPEAKERS, write_real_digits
from examples.spoken_digits import WORDS, voices_per_language, write_spoken_digits


@dataclasses.dataclass(frozen=True)
class JointSplit:
    """How much of each source goes where."""

    train_images: int = 20_000  # 3,000 held the image side back (bench/joint_space.md)
    test_images: int = 1000
    train_voices_per_language: int = 8
    test_voices_per_language: int = 2
    held_out_language: str = "it"  # its digit words are never trained on
    real_speakers_in_training: bool = False  # False: every real speaker is held out


def write_joint_digits(root: pathlib.Path, split: JointSplit = JointSplit()) -> pathlib.Path:
    """Writes the tree described above under `root`; returns `root`."""
    for name, count in (("train", split.train_images), ("test", split.test_images)):
        images, labels = mnist_split(name, count)
        for index, (pixels, label) in enumerate(zip(images, labels, strict=True)):
            path = root / name / WORDS[label] / f"image-{index:05d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(digit_png(pixels))
    per_language = split.train_voices_per_language + split.test_voices_per_language
    for speakers in voices_per_language(per_language, seed=0).values():
        write_spoken_digits(root / "train", speakers[: split.train_voices_per_language])
        write_spoken_digits(root / "test", speakers[split.train_voices_per_language :])
    write_real_digits(root / ("train" if split.real_speakers_in_training else "test"), SPEAKERS)
    trained = tuple(language for language in LANGUAGES if language != split.held_out_language)
    write_digit_words(root / "train", trained)
    write_digit_words(root / "test", LANGUAGES)
    return root


def source_of(uri: str) -> str:
    """Which source a file of the tree came from: `image`, `voice:<language>`,
    `speaker:<name>` or `words:<language>` (for per-language and per-speaker figures)."""
    name = pathlib.PurePath(uri).stem
    if uri.endswith(".png"):
        return "image"
    if uri.endswith(".txt"):
        return f"words:{name}"
    if name in {speaker.name for speaker in SPEAKERS}:
        return f"speaker:{name}"
    return f"voice:{name.split('+')[0].split('-')[0]}"


def without_real_speakers(tables: dict[str, EmbeddingTable]) -> dict[str, EmbeddingTable]:
    """The tables with the real speakers' clips left out: what remains are images, voices
    never heard and words, the rows the issue's 0.90 bars are for (the real speakers
    are reported per speaker)."""
    return {
        modality: table.take(
            np.flatnonzero([not source_of(uri).startswith("speaker:") for uri in table.uris])
        )
        for modality, table in tables.items()
    }


def accuracy_by_source(tables: dict[str, EmbeddingTable]) -> dict[str, dict[str, float]]:
    """For each "query->gallery" pair, each query source (a language's voices or words, a
    real speaker; not the images) -> label accuracy of the nearest gallery row."""
    figures: dict[str, dict[str, float]] = {}
    for query_modality, query in tables.items():
        sources = np.array([source_of(uri) for uri in query.uris])
        for source in sorted(set(sources.tolist()) - {"image"}):
            rows = query.take(np.flatnonzero(sources == source))
            matrix = cross_modal_matrix({**tables, query_modality: rows})
            for (modality, gallery), value in matrix.items():
                if modality == query_modality:
                    figures.setdefault(f"{query_modality}->{gallery}", {})[source] = value
    return figures
