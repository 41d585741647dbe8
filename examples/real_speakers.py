"""Digits 0 .. 9 read by three real people, from Debian's Asterisk telephone prompts.

Each speaker recorded the ten digits once, at 8 kHz for the telephone (GSM or
16-bit WAV). sox converts them to 16 kHz 16-bit WAV files in the layout of
examples/spoken_digits.py, the label the English digit word whatever the
language. These three are for training and validation (leave one speaker out);
they are the only recordings of people the project uses.

    ROOT/<word>/<speaker>.wav      e.g. ROOT/seven/fr-armelle.wav
"""

from __future__ import annotations

import dataclasses
import pathlib
import shutil
import subprocess

import numpy as np

from embedbeam.pipeline.model.quality import knn_accuracy
from examples.spoken_digits import WORDS

_SOUNDS = pathlib.Path("/usr/share/asterisk/sounds")


@dataclasses.dataclass(frozen=True)
class Speaker:
    name: str
    language: str  # as in examples/spoken_digits.py
    folder: pathlib.Path  # holds 0.<extension> .. 9.<extension>
    extension: str
    package: str  # the Debian package that installs `folder`

    def recording(self, word: str) -> pathlib.Path:
        return self.folder / f"{WORDS.index(word)}.{self.extension}"


SPEAKERS = (
    Speaker("fr-armelle", "fr", _SOUNDS / "fr/digits", "gsm", "asterisk-prompt-fr-armelle"),
    Speaker(
        "it-menardi", "it", _SOUNDS / "it_IT_f_Menardi/digits", "wav",
        "asterisk-prompt-it-menardi-wav",
    ),
    Speaker("es-co", "es", _SOUNDS / "es/digits", "gsm", "asterisk-prompt-es-co"),
)  # fmt: skip


def write_real_digits(
    root: pathlib.Path, speakers: tuple[Speaker, ...] = SPEAKERS
) -> list[pathlib.Path]:
    """Every digit by every speaker as 16 kHz mono 16-bit WAV: `root/<word>/<speaker>.wav`."""
    sox = shutil.which("sox")
    if sox is None:
        raise RuntimeError("sox is not installed: apt-get install sox libsox-fmt-all")
    paths = []
    for speaker in speakers:
        if not speaker.folder.is_dir():
            raise RuntimeError(f"{speaker.folder} is missing: apt-get install {speaker.package}")
        for word in WORDS:
            path = root / word / f"{speaker.name}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run(
                [sox, "-D", str(speaker.recording(word)), "-r", "16000", "-b", "16", "-c", "1",
                 str(path)],
                check=True, capture_output=True,
            )  # fmt: skip
            paths.append(path)
    return paths


def language_of(uri: str) -> str | None:
    """The language of a clip named as these examples name them: a real speaker's, or
    an espeak-ng voice's (`<accent>+<variant>-...`); None for any other name."""
    stem = pathlib.PurePosixPath(uri).stem.split("~")[0]
    for speaker in SPEAKERS:
        if stem == speaker.name:
            return speaker.language
    accent = stem.split("+")[0]
    return accent.split("-")[0] if "+" in stem else None


def real_speaker_accuracy(
    uris: list[str], labels: np.ndarray, embeddings: np.ndarray
) -> dict[str, float]:
    """Per real speaker among `uris`: the share of its clips whose nearest espeak-ng clip
    in the speaker's language (the other rows of that language) carries its digit."""
    stems = np.array([pathlib.PurePosixPath(uri).stem for uri in uris])
    languages = np.array([language_of(uri) for uri in uris])
    synthetic = ~np.isin(stems, [speaker.name for speaker in SPEAKERS])
    accuracy = {}
    for speaker in SPEAKERS:
        queries = stems == speaker.name
        gallery = synthetic & (languages == speaker.language)
        if queries.any() and gallery.any():
            accuracy[speaker.name] = knn_accuracy(
                embeddings[gallery], labels[gallery], embeddings[queries], labels[queries], k=1
            )
    return accuracy
