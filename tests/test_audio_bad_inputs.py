"""Audio as it comes in the world: other rates, channels and encodings, noise, hours of it,
a silent intro. Each embeds sensibly or is a dead letter with a reason.

The format variants are one spoken "seven" re-encoded by sox (tests/data/bad/audio/,
listed in its README); noise, NaN samples, a 2-hour file and a song with a silent
intro are made here with numpy and soundfile.
"""

from __future__ import annotations

import io
import json
import pathlib
import shutil
import tracemalloc
import warnings

import numpy as np
import pyarrow.dataset as ds
import pytest
import soundfile

from embedbeam.pipeline import cli
from embedbeam.transforms.sparse import InvalidInput, SparseFeatures
from embedbeam.transforms.sparse.audio import (
    DEFAULT_MAX_WINDOWS,
    _decode,
    featurize_audio,
    window_starts,
)

CORPUS = pathlib.Path(__file__).parent / "data" / "bad"
SEVEN = CORPUS / "ok" / "spoken seven ü.wav"  # espeak-ng, 16 kHz, 16-bit mono
VARIANTS = sorted((CORPUS / "audio").glob("seven-*.wav"))
RATE = 8000


def _encoded(samples: np.ndarray, rate: int, audio_format: str = "WAV", **kwargs) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, rate, format=audio_format, **kwargs)
    return buffer.getvalue()


def _cosine(a: SparseFeatures, b: SparseFeatures) -> float:
    size = max(a.ids.max(), b.ids.max()) + 1
    dense_a, dense_b = np.zeros(size), np.zeros(size)
    dense_a[a.ids], dense_b[b.ids] = a.weights, b.weights
    return float(dense_a @ dense_b / np.linalg.norm(dense_a) / np.linalg.norm(dense_b))


def _tone(seconds: float, hertz: float, rate: int = RATE) -> np.ndarray:
    return (0.5 * np.sin(2 * np.pi * hertz * np.arange(int(seconds * rate)) / rate)).astype(
        np.float32
    )


def _song(seconds_per_note: float = 0.5, notes: int = 40) -> np.ndarray:
    """An arpeggio of A minor, note after note: music of a sort, the same every time."""
    scale = (220.0, 261.6, 329.6, 440.0)
    return np.concatenate([_tone(seconds_per_note, scale[i % 4]) for i in range(notes)])


def _two_hours_of_beeps() -> bytes:
    """A 2-hour FLAC, a one-second beep at the start of every minute (under 1 MB; decoded
    at 16 kHz it would be 460 MB of float32)."""
    buffer, beep, rest = io.BytesIO(), _tone(1, 440), np.zeros(59 * RATE, np.float32)
    with soundfile.SoundFile(buffer, "w", RATE, 1, format="FLAC", subtype="PCM_16") as sound:
        for _ in range(120):
            sound.write(beep)
            sound.write(rest)
    return buffer.getvalue()


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda path: path.stem)
def test_a_short_clip_decodes_as_librosa_load_gives_it(variant):
    import librosa

    data = variant.read_bytes()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected, _ = librosa.load(io.BytesIO(data), sr=16000, mono=True, duration=10.0)

    (samples,) = _decode(data, max_seconds=10.0, max_windows=DEFAULT_MAX_WINDOWS)

    assert samples.dtype == expected.dtype
    np.testing.assert_array_equal(samples, expected)


@pytest.mark.parametrize(
    "name, closeness",
    [
        ("seven-8k", 0.9),  # nothing above 4 kHz
        ("seven-48k", 0.99),
        ("seven-stereo", 0.99),  # left, and right at half level: their mean
        ("seven-24bit", 0.99),
        ("seven-float", 0.99),
        ("seven-mulaw", 0.9),  # 8 kHz, 8-bit mu-law
        ("seven-gsm", 0.6),  # GSM 6.10 in WAV: a telephone codec, 8 kHz
    ],
)
def test_other_rates_channels_and_encodings_embed_near_the_original(name, closeness):
    original = featurize_audio(SEVEN.read_bytes())

    variant = featurize_audio((CORPUS / "audio" / f"{name}.wav").read_bytes())

    # Measured 2026-12-01: 1.0 for 48 kHz, stereo, 24-bit and float, 0.96 for 8 kHz and
    # mu-law, 0.66 for GSM (other digits of the same voice are 0.74-0.82 from it).
    assert _cosine(variant, original) >= closeness


def test_float_samples_that_are_not_numbers_are_a_dead_letter():
    samples = _tone(1, 440, 16000)
    samples[100] = np.nan

    with pytest.raises(InvalidInput) as caught:
        featurize_audio(_encoded(samples, 16000, subtype="FLOAT"))

    assert caught.value.reason == "undecodable_audio"
    assert "not all finite" in str(caught.value)


def test_pure_noise_embeds_as_a_grid_loud_everywhere():
    noise = np.random.default_rng(0).normal(0, 0.3, 16000).astype(np.float32)

    features = featurize_audio(_encoded(noise, 16000), mels=32, frames=24)

    assert features.nnz == 32 * 24  # every cell of the grid is active
    assert features.weights.min() > 0.5


def test_windows_cover_a_long_clip_end_to_end_or_spread_evenly_over_it():
    window = 10 * RATE

    assert window_starts(3 * RATE, window, 24) == [0]  # a digit: one window, as before
    assert window_starts(240 * RATE, window, 24) == [k * window for k in range(24)]  # 4 min
    two_hours = window_starts(7200 * RATE, window, 24)
    assert len(two_hours) == 24 and two_hours[0] == 0 and two_hours[-1] == 7190 * RATE
    assert np.ptp(np.diff(two_hours)) <= 1  # evenly spread: one every 5 minutes


def test_a_song_with_a_long_silent_intro_embeds_by_its_music():
    song = _song()
    intro = np.zeros(40 * RATE, np.float32)  # the first 10 s alone would be silent_audio

    with_intro = featurize_audio(_encoded(np.concatenate([intro, song]), RATE))

    assert _cosine(with_intro, featurize_audio(_encoded(song, RATE))) > 0.99


def test_a_two_hour_file_is_featurized_from_24_windows_in_bounded_memory():
    data = _two_hours_of_beeps()
    one_beep = featurize_audio(_encoded(_tone(1, 440), RATE))  # also imports librosa & co.

    tracemalloc.start()
    try:
        features = featurize_audio(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    # One 10-s window at a time: 80,000 samples, then 160,000 at 16 kHz.
    assert peak < 20_000_000
    assert _cosine(features, one_beep) > 0.9  # windows without their beep are silent, left out


@pytest.mark.slow
def test_each_bad_audio_input_is_a_row_or_a_dead_letter_with_its_reason(tmp_path, audio_model):
    inputs = tmp_path / "inputs"
    (inputs / "formats").mkdir(parents=True)
    for variant in VARIANTS:
        shutil.copy(variant, inputs / "formats")
    generated = inputs / "generated"
    generated.mkdir()
    noise = np.random.default_rng(0).normal(0, 0.3, 16000).astype(np.float32)
    (generated / "noise.wav").write_bytes(_encoded(noise, 16000))
    (generated / "two-hours.flac").write_bytes(_two_hours_of_beeps())
    song = np.concatenate([np.zeros(40 * RATE, np.float32), _song()])
    (generated / "silent-intro.flac").write_bytes(_encoded(song, RATE, "FLAC"))
    not_a_number = _tone(1, 440, 16000)
    not_a_number[100] = np.inf
    (generated / "infinite.wav").write_bytes(_encoded(not_a_number, 16000, subtype="FLOAT"))
    out = tmp_path / "out"

    status = cli.main(
        ["embed", "--model", str(audio_model), "--input", f"{inputs}/**", "--output", str(out),
         "--label-from", "none"]
    )  # fmt: skip

    assert status == 0
    rows = ds.dataset(out / "embeddings", partitioning="hive").to_table().column("uri")
    dead = ds.dataset(out / "dead_letter").to_table().to_pylist()
    assert sorted(uri.rsplit("/", 1)[-1] for uri in rows.to_pylist()) == sorted(
        [path.name for path in VARIANTS] + ["noise.wav", "two-hours.flac", "silent-intro.flac"]
    )
    assert [(d["uri"].rsplit("/", 1)[-1], d["error"]) for d in dead] == [
        ("infinite.wav", "undecodable_audio")
    ]
    manifest = json.loads((out / "_manifest.json").read_text())
    assert manifest["inputs_seen"] == len(VARIANTS) + 4 == len(rows) + len(dead)
