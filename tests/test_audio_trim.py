"""Silence trimming on the grid's band: a thump or a click around a word is not the word."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile
import soxr

from embedbeam.transforms.sparse.audio import featurize_audio, voiced_columns
from embedbeam.transforms.sparse.modalities import MODALITIES

SPEECH = {setting.name: setting.default for setting in MODALITIES["audio"].flags}
RATE = 16_000


def _wav(samples: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, samples.astype(np.float32), RATE, format="WAV", subtype="FLOAT")
    return buffer.getvalue()


def _burst(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """A decaying burst of a low tone and noise, as loud as a clip gets: a thump or a click."""
    time = np.arange(round(seconds * RATE)) / RATE
    sound = np.sin(2 * np.pi * 80 * time) + 0.5 * rng.standard_normal(time.size)
    return 0.9 * sound * np.exp(-time / (seconds / 4))


def _grid(features) -> np.ndarray:
    """The signed band deviations back on their grid (id 2k: cell k louder, 2k + 1: quieter)."""
    grid = np.zeros(SPEECH["mels"] * SPEECH["frames"])
    np.add.at(grid, features.ids // 2, np.where(features.ids % 2, -1, 1) * features.weights)
    return grid


def _correlation(a, b) -> float:
    return float(np.corrcoef(_grid(a), _grid(b))[0, 1])


def test_a_thump_before_the_word_and_a_click_after_it_are_cut(spoken_seven):
    word, rate = soundfile.read(io.BytesIO(spoken_seven), dtype="float32")
    word = soxr.resample(word, rate, RATE)  # espeak-ng writes 22,050 Hz
    rng = np.random.default_rng(0)
    gap = np.zeros(RATE // 4, np.float32)
    framed = np.concatenate([_burst(0.03, rng), gap, word, gap, _burst(0.02, rng)])

    clean = featurize_audio(_wav(word), **{**SPEECH, "trim": "band"})
    band_trimmed = featurize_audio(_wav(framed), **{**SPEECH, "trim": "band"})
    sample_trimmed = featurize_audio(_wav(framed), **{**SPEECH, "trim": "samples"})

    assert _correlation(clean, band_trimmed) > 0.95
    # trimming the whole signal keeps the thump, the gaps and the click in the grid
    assert _correlation(clean, sample_trimmed) < 0.7


def test_voiced_columns_span_the_runs_of_sound_and_skip_short_bursts():
    loudness_db = np.full(100, -60.0)
    loudness_db[0:2] = 0.0  # a thump: loud, but 20 ms
    loudness_db[20:40] = -5.0  # a syllable,
    loudness_db[40:45] = -40.0  # a 50 ms stop,
    loudness_db[45:70] = -10.0  # another syllable
    loudness_db[95:98] = -2.0  # a click at the end
    power = np.tile(10 ** (loudness_db / 10), (4, 1)) / 4  # four bands sharing the power

    assert voiced_columns(power) == slice(20, 70)


def test_without_a_run_of_sound_every_column_is_kept():
    power = np.full((4, 50), 1e-6)
    power[:, 10:13] = 1.0

    assert voiced_columns(power) == slice(None)


def test_trim_must_name_a_way_of_trimming(spoken_seven):
    with pytest.raises(ValueError, match="trim must be one of samples, band"):
        featurize_audio(spoken_seven, **{**SPEECH, "trim": "vad"})
