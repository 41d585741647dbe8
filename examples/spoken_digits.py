"""Spoken digits "zero" .. "nine", rendered to WAV by espeak-ng, one folder per word.

Each voice is an English accent, a voice variant, a speed and a pitch: espeak-ng
has enough of each for many distinct speakers. The list is fixed and seeded,
so the same voices (and bytes) come out on every machine with the same
espeak-ng. Train on some voices and evaluate on voices never heard in training.

    ROOT/<word>/<voice>.wav      e.g. ROOT/seven/en-gb-scotland+f3-s150-p40.wav
"""

from __future__ import annotations

import dataclasses
import itertools
import pathlib
import shutil
import subprocess

import numpy as np

WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
ACCENTS = (
    "en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan",
    "en-gb-x-gbcwmd", "en-029",
)  # fmt: skip
VARIANTS = ("m1", "m3", "m7", "f1", "f3", "f4", "klatt", "croak", "Andy", "Annie", "iven2", "steph")
SPEEDS = (120, 150, 185)
PITCHES = (30, 50, 70)


@dataclasses.dataclass(frozen=True)
class Voice:
    accent: str
    variant: str
    speed: int
    pitch: int

    @property
    def name(self) -> str:
        return f"{self.accent}+{self.variant}-s{self.speed}-p{self.pitch}"


def voices(count: int, seed: int = 0) -> list[Voice]:
    """`count` distinct voices, a seeded sample of accent x variant x speed x pitch."""
    every = [Voice(*combo) for combo in itertools.product(ACCENTS, VARIANTS, SPEEDS, PITCHES)]
    picks = np.random.default_rng(seed).choice(len(every), size=count, replace=False)
    return [every[i] for i in picks]


def speak(word: str, voice: Voice, path: pathlib.Path) -> None:
    """Writes `word` spoken by `voice` to the WAV file `path`."""
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        raise RuntimeError("espeak-ng is not installed: apt-get install espeak-ng (make does this)")
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [espeak, "-v", f"{voice.accent}+{voice.variant}", "-s", str(voice.speed),
         "-p", str(voice.pitch), "-w", str(path), word],
        check=True, capture_output=True,
    )  # fmt: skip


def write_spoken_digits(root: pathlib.Path, speakers: list[Voice]) -> list[pathlib.Path]:
    """Every word by every voice: `root/<word>/<voice>.wav`."""
    paths = []
    for voice in speakers:
        for word in WORDS:
            path = root / word / f"{voice.name}.wav"
            speak(word, voice, path)
            paths.append(path)
    return paths
