"""Seeded copies of training clips as a microphone or a telephone line would bring them.

A copy is one `Recipe`: a speed change (tempo and pitch together), room
reverberation, a silent lead-in (a time shift), noise at a signal-to-noise
ratio, a channel (wideband; the telephone band resampled to 8 kHz; a GSM or
mu-law round trip at 8 kHz) and a gain. sox does the signal processing, numpy
the noise; the recipe and the noise come from a seed and the clip's name, so
the same clips give the same bytes in any order, on any machine with the same
sox. Output is 16 kHz mono 16-bit WAV, in the layout of examples/spoken_digits.py.

    ROOT/<word>/<voice>~<k>.wav      e.g. ROOT/seven/it-menardi~3.wav
"""

from __future__ import annotations

import dataclasses
import hashlib
import pathlib
import shutil
import subprocess

import numpy as np
import soundfile

RATE = 16_000
CHANNELS = ("wide", "telephone", "gsm", "mulaw")
SNRS_DB = (5.0, 10.0, 20.0, 30.0)
_RAW = ["-t", "f32", "-c", "1"]  # raw float32 mono through the pipes


@dataclasses.dataclass(frozen=True)
class Recipe:
    """One augmentation; the defaults leave a clip as it is."""

    speed: float = 1.0  # sox `speed`: 1.1 is 10% faster and higher
    reverberance: float = 0.0  # sox `reverb` percent, 0 for none
    shift_s: float = 0.0  # silence (or noise, with `snr_db`) before the clip
    snr_db: float | None = None  # white noise this many dB below the clip's power
    channel: str = "wide"  # one of CHANNELS
    gain_db: float = 0.0

    def __post_init__(self) -> None:
        if self.channel not in CHANNELS:
            raise ValueError(f"channel {self.channel!r} is not one of {CHANNELS}")


def random_recipe(rng: np.random.Generator) -> Recipe:
    """A recipe drawn from ranges that cover what real recordings do to a clip."""
    return Recipe(
        speed=float(rng.uniform(0.85, 1.15)),
        reverberance=float(rng.uniform(20, 80)) if rng.random() < 0.4 else 0.0,
        shift_s=float(rng.uniform(0.0, 0.3)),
        snr_db=float(rng.choice(SNRS_DB)) if rng.random() < 0.7 else None,
        channel=str(rng.choice(CHANNELS, p=(0.3, 0.3, 0.2, 0.2))),
        gain_db=float(rng.uniform(-24, 6)),
    )


def augment(samples: np.ndarray, recipe: Recipe, rng: np.random.Generator) -> np.ndarray:
    """`samples` (16 kHz mono float) through `recipe`; `rng` draws the noise."""
    effects = []
    if recipe.speed != 1.0:
        effects += ["speed", f"{recipe.speed:.4f}", "rate", str(RATE)]
    if recipe.reverberance:
        effects += ["reverb", f"{recipe.reverberance:.1f}"]
    out = _sox(samples, effects) if effects else np.asarray(samples, np.float32)
    out = np.concatenate([np.zeros(round(recipe.shift_s * RATE), np.float32), out])
    if recipe.snr_db is not None:
        power = np.mean(out**2) * out.size / max(np.count_nonzero(out), 1)
        noise = rng.standard_normal(out.size).astype(np.float32)
        out = out + noise * np.sqrt(power / 10 ** (recipe.snr_db / 10))
    out = _channel(out, recipe.channel)
    return (out * 10 ** (recipe.gain_db / 20)).astype(np.float32)


def write_augmented(
    sources: list[pathlib.Path], root: pathlib.Path, copies: int, seed: int = 0
) -> list[pathlib.Path]:
    """`copies` augmented copies of each `<word>/<name>.wav` in `sources`, as
    `root/<word>/<name>~<k>.wav`; copy k of a clip depends only on seed, word, name and k."""
    paths = []
    for source in sources:
        samples, rate = soundfile.read(source, dtype="float32")
        if rate != RATE or samples.ndim != 1:
            samples = _sox_file(source)
        word, name = source.parent.name, source.stem
        for copy in range(copies):
            rng = np.random.default_rng(_seed(seed, word, name, copy))
            path = root / word / f"{name}~{copy}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            clipped = np.clip(augment(samples, random_recipe(rng), rng), -1.0, 1.0)
            soundfile.write(path, clipped, RATE, subtype="PCM_16")
            paths.append(path)
    return paths


def _channel(samples: np.ndarray, channel: str) -> np.ndarray:
    if channel == "telephone":
        return _sox(samples, ["sinc", "300-3400", "rate", "8000", "rate", str(RATE)])
    if channel == "gsm":
        return _round_trip(samples, ["-t", "gsm", "-r", "8000", "-c", "1"])
    if channel == "mulaw":
        return _round_trip(samples, ["-t", "ul", "-r", "8000", "-c", "1"])
    return samples


def _round_trip(samples: np.ndarray, encoded: list[str]) -> np.ndarray:
    """Encodes to 8 kHz `encoded` and decodes back to 16 kHz float."""
    data = _run([*_RAW, "-r", str(RATE), "-", *encoded, "-"], samples.astype(np.float32).tobytes())
    return np.frombuffer(_run([*encoded, "-", *_RAW, "-r", str(RATE), "-"], data), np.float32)


def _sox(samples: np.ndarray, effects: list[str]) -> np.ndarray:
    """16 kHz float samples through sox `effects`, back as 16 kHz float samples."""
    raw = [*_RAW, "-r", str(RATE), "-"]
    return np.frombuffer(
        _run([*raw, *raw, *effects], samples.astype(np.float32).tobytes()), np.float32
    )


def _sox_file(path: pathlib.Path) -> np.ndarray:
    return np.frombuffer(_run([str(path), *_RAW, "-r", str(RATE), "-"], b""), np.float32)


def _run(arguments: list[str], data: bytes) -> bytes:
    sox = shutil.which("sox")
    if sox is None:
        raise RuntimeError("sox is not installed: apt-get install sox libsox-fmt-all")
    # -R: repeatable (sox seeds its own randomness the same every run); -D: no dither
    done = subprocess.run(
        [sox, "-R", "-D", *arguments], input=data, capture_output=True, check=True
    )
    return done.stdout


def _seed(seed: int, word: str, name: str, copy: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}/{word}/{name}/{copy}".encode()).digest()[:8])
