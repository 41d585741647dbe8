"""Spoken digits 0 .. 9, rendered to WAV by espeak-ng, one folder per English digit word.

Each voice is an espeak-ng accent of English, German, French, Spanish or
Italian, a voice variant, a speed and a pitch: espeak-ng has enough of each for
many distinct speakers. A voice speaks the numeral, so it says the digit in its
own language ("7" is "sieben" in German); the label is the English word
whatever the language, so every language files under the same ten folders.
The list is fixed and seeded, so the same voices (and bytes) come out on every
machine with the same espeak-ng. Train on some voices and evaluate on voices
never heard in training.

    ROOT/<word>/<voice>.wav      e.g. ROOT/seven/de+f3-s150-p40.wav
"""

from __future__ import annotations

import dataclasses
import itertools
import pathlib
import shutil
import subprocess

import numpy as np

WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
# espeak-ng voices by language; a voice's language is its name up to the first '-'.
ACCENTS = {
    "en": ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan",
           "en-gb-x-gbcwmd", "en-029"),
    "de": ("de",),
    "fr": ("fr-fr", "fr-be", "fr-ch"),
    "es": ("es", "es-419"),
    "it": ("it",),
}  # fmt: skip
LANGUAGES = tuple(ACCENTS)
VARIANTS = ("m1", "m3", "m7", "f1", "f3", "f4", "klatt", "croak", "Andy", "Annie", "iven2", "steph")
SPEEDS = (120, 150, 185)
PITCHES = (30, 50, 70)
# A wider choice: slower speech (real speakers read digits slowly) and more pitches.
WIDE_SPEEDS = (80, 100, 120, 150, 185)
WIDE_PITCHES = (10, 30, 50, 70, 90)


@dataclasses.dataclass(frozen=True)
class Palette:
    """What a voice is drawn from besides its accent."""

    variants: tuple[str, ...] = VARIANTS
    speeds: tuple[int, ...] = SPEEDS
    pitches: tuple[int, ...] = PITCHES


def every_variant() -> tuple[str, ...]:
    """The voice variants of the installed espeak-ng (`espeak-ng --voices=variant`, its
    files under !v/), whispers left out: they have no voiced sound to learn from."""
    listing = subprocess.run(
        [_espeak(), "--voices=variant"], check=True, capture_output=True, text=True
    ).stdout
    files = [line.split()[4].removeprefix("!v/") for line in listing.splitlines()[1:]]
    return tuple(sorted(name for name in files if "whisper" not in name))


@dataclasses.dataclass(frozen=True)
class Voice:
    accent: str
    variant: str
    speed: int
    pitch: int

    @property
    def name(self) -> str:
        return f"{self.accent}+{self.variant}-s{self.speed}-p{self.pitch}"

    @property
    def language(self) -> str:
        return self.accent.split("-")[0]


def voices(
    count: int, seed: int = 0, languages: tuple[str, ...] = ("en",), palette: Palette = Palette()
) -> list[Voice]:
    """`count` distinct voices, a seeded sample of accent x variant x speed x pitch
    over the accents of `languages`."""
    accents = [accent for language in languages for accent in ACCENTS[language]]
    combos = itertools.product(accents, palette.variants, palette.speeds, palette.pitches)
    every = [Voice(*combo) for combo in combos]
    picks = np.random.default_rng(seed).choice(len(every), size=count, replace=False)
    return [every[i] for i in picks]


def voices_per_language(
    count: int,
    seed: int = 0,
    languages: tuple[str, ...] = LANGUAGES,
    palette: Palette = Palette(),
) -> dict[str, list[Voice]]:
    """`count` distinct voices in each of `languages`, each language seeded apart
    (so adding a language leaves the others' voices as they were)."""
    return {
        language: voices(count, seed=seed + index, languages=(language,), palette=palette)
        for index, language in enumerate(languages)
    }


def speak(word: str, voice: Voice, path: pathlib.Path) -> None:
    """Writes the digit `word` ("seven"), spoken by `voice` in its language, to the WAV `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [_espeak(), "-v", f"{voice.accent}+{voice.variant}", "-s", str(voice.speed),
         "-p", str(voice.pitch), "-w", str(path), str(WORDS.index(word))],
        check=True, capture_output=True,
    )  # fmt: skip


def write_spoken_digits(root: pathlib.Path, speakers: list[Voice]) -> list[pathlib.Path]:
    """Every digit by every voice: `root/<word>/<voice>.wav`."""
    paths = []
    for voice in speakers:
        for word in WORDS:
            path = root / word / f"{voice.name}.wav"
            speak(word, voice, path)
            paths.append(path)
    return paths


def write_voice_split(
    train: pathlib.Path, test: pathlib.Path, train_voices: int, test_voices: int, seed: int = 0
) -> None:
    """Every digit by `train_voices` voices of each language into `train`, and by
    `test_voices` other voices of each language into `test`."""
    for chosen in voices_per_language(train_voices + test_voices, seed).values():
        write_spoken_digits(train, chosen[:train_voices])
        write_spoken_digits(test, chosen[train_voices:])


def _espeak() -> str:
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        raise RuntimeError("espeak-ng is not installed: apt-get install espeak-ng (make does this)")
    return espeak
