"""The audio featurizer on real speech (espeak-ng), real recorded sounds and broken files."""

from __future__ import annotations

import io
import pathlib
import wave

import numpy as np
import pytest
import soundfile

from embedbeam.transforms.sparse import InvalidInput
from embedbeam.transforms.sparse.audio import featurize_audio, pool_loudness, pool_time
from embedbeam.transforms.sparse.modalities import MODALITIES, vocabulary_size
from examples.music_phrases import Clip, Phrase, write_music

FREEDESKTOP_SOUNDS = pathlib.Path("/usr/share/sounds/freedesktop/stereo")
# What `embedbeam train` records for a new speech model (the flags' defaults).
SPEECH = {setting.name: setting.default for setting in MODALITIES["audio"].flags}


def _wav(samples: np.ndarray, rate: int = 16000) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.astype("<i2").tobytes())
    return buffer.getvalue()


def test_a_spoken_word_fills_the_loud_cells_of_the_grid(spoken_seven):
    features = featurize_audio(spoken_seven, mels=32, frames=24, threshold_db=-40)

    assert 50 < features.nnz < 32 * 24
    assert features.ids.max() < 32 * 24
    assert features.weights.min() > 0 and features.weights.max() == pytest.approx(1.0)


def test_the_loudest_cells_keep_their_place_when_the_clip_is_quieter(spoken_seven):
    loud = featurize_audio(spoken_seven)
    with wave.open(io.BytesIO(spoken_seven)) as original:  # espeak-ng writes 16-bit PCM
        rate = original.getframerate()
        samples = np.frombuffer(original.readframes(original.getnframes()), dtype="<i2")

    quiet = featurize_audio(_wav(samples // 4, rate))

    # loudness is relative to the clip's own peak, so volume does not move the cells
    assert len(set(loud.ids) & set(quiet.ids)) / len(set(loud.ids) | set(quiet.ids)) > 0.9


@pytest.mark.parametrize("name", ["bell.oga", "complete.oga", "dialog-warning.oga"])
def test_real_recorded_ogg_sounds_featurize(name):
    features = featurize_audio((FREEDESKTOP_SOUNDS / name).read_bytes())

    assert features.nnz > 0


def test_time_is_pooled_onto_equal_slices_and_short_clips_are_stretched():
    grid = np.arange(12, dtype=float).reshape(2, 6)

    np.testing.assert_allclose(pool_time(grid, 3), [[0.5, 2.5, 4.5], [6.5, 8.5, 10.5]])
    assert pool_time(grid[:, :2], 4).tolist() == [[0, 0, 1, 1], [6, 6, 7, 7]]


def test_only_the_first_seconds_are_decoded():
    tone = (8000 * np.sin(np.arange(16000 * 30) * 2 * np.pi * 440 / 16000)).astype("<i2")

    features = featurize_audio(_wav(tone), max_seconds=2.0)

    assert features.nnz > 0


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", "undecodable_audio"),
        (b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00" + b"\xff" * 16, "undecodable_audio"),
        (_wav(np.zeros(0)), "empty_audio"),
        (_wav(np.zeros(16000)), "silent_audio"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 200, "undecodable_audio"),
    ],
    ids=["zero-bytes", "corrupt-header", "no-samples", "all-silent", "png-named-mp3"],
)
def test_broken_audio_is_refused_with_a_reason(data, reason):
    with pytest.raises(InvalidInput) as caught:
        featurize_audio(data)

    assert caught.value.reason == reason


def test_a_two_hour_recording_is_read_as_a_prefix_and_capped_not_loaded_whole(tmp_path):
    from embedbeam.transforms.common.records import InputRef
    from embedbeam.transforms.sparse.read_bytes import read_bounded

    rate, seconds = 16000, 2 * 60 * 60
    tone = (8000 * np.sin(np.arange(rate * 5) * 2 * np.pi * 300 / rate)).astype("<i2")
    header = _wav(tone, rate)[:44]
    two_hours = tmp_path / "lecture.wav"
    with open(two_hours, "wb") as handle:  # a sparse file: 230 MB on paper, 5 s of tone on disk
        handle.write(header[:40] + (seconds * rate * 2).to_bytes(4, "little"))
        handle.write(tone.tobytes())
        handle.truncate(44 + seconds * rate * 2)
    ref = InputRef("lecture", str(two_hours), None, "audio")

    data = read_bounded(ref, max_bytes=2_000_000)

    assert len(data) == 2_000_000
    assert featurize_audio(data, max_seconds=10).nnz > 0


@pytest.mark.parametrize("audio_format", ["FLAC", "OGG", "MP3"])
def test_flac_ogg_and_mp3_of_the_same_speech_give_nearly_the_same_cells(spoken_seven, audio_format):
    import soundfile

    samples, rate = soundfile.read(io.BytesIO(spoken_seven))
    encoded = io.BytesIO()
    soundfile.write(encoded, samples, rate, format=audio_format)
    reference = set(featurize_audio(spoken_seven).ids)

    cells = set(featurize_audio(encoded.getvalue()).ids)

    assert len(cells & reference) / len(cells | reference) > 0.7


def _samples(data: bytes) -> tuple[np.ndarray, int]:
    with wave.open(io.BytesIO(data)) as original:  # espeak-ng writes 16-bit PCM
        rate = original.getframerate()
        return np.frombuffer(original.readframes(original.getnframes()), dtype="<i2"), rate


def _jaccard(a, b) -> float:
    return len(set(a.ids) & set(b.ids)) / len(set(a.ids) | set(b.ids))


def test_speech_cells_are_each_bands_deviation_from_its_mean_two_ids_a_cell(spoken_seven):
    features = featurize_audio(spoken_seven, **SPEECH)

    assert vocabulary_size("audio", SPEECH) == 20 * 16 * 2
    assert features.ids.max() < 20 * 16 * 2
    cells = features.ids // 2
    assert len(np.unique(cells)) == len(cells)  # a cell is louder or quieter, not both
    assert {0, 1} == set(features.ids % 2)
    assert 0 < features.weights.min() and features.weights.max() <= 1.0


def test_speech_cells_are_the_same_ids_20_db_quieter(spoken_seven):
    import soundfile

    samples, rate = _samples(spoken_seven)
    quieter = io.BytesIO()  # float samples, so that only the level changes, not the rounding
    soundfile.write(quieter, samples / 32768 * 0.1, rate, format="WAV", subtype="FLOAT")

    loud = featurize_audio(spoken_seven, **SPEECH)
    quiet = featurize_audio(quieter.getvalue(), **SPEECH)

    assert np.array_equal(loud.ids, quiet.ids)
    np.testing.assert_allclose(loud.weights, quiet.weights, atol=0.02)


def test_speech_cells_of_a_telephone_line_are_nearly_those_of_the_clip(spoken_seven, tmp_path):
    import shutil
    import subprocess

    wide, phoned = tmp_path / "wide.wav", tmp_path / "phoned.wav"
    wide.write_bytes(spoken_seven)
    subprocess.run(
        [shutil.which("sox"), "-R", "-D", str(wide), "-r", "8000", "-e", "gsm-full-rate",
         str(phoned.with_suffix(".gsm")), "sinc", "300-3400"],
        check=True,
    )  # fmt: skip
    subprocess.run([shutil.which("sox"), str(phoned.with_suffix(".gsm")), str(phoned)], check=True)
    old_grid = {"mels": 32, "frames": 24, "loudness_slices_db": 0.0, "fmax": 8000.0, "fmin": 0.0}

    speech = _jaccard(
        featurize_audio(spoken_seven, **SPEECH), featurize_audio(phoned.read_bytes(), **SPEECH)
    )
    peak = _jaccard(
        featurize_audio(spoken_seven, **old_grid), featurize_audio(phoned.read_bytes(), **old_grid)
    )

    assert speech > 0.7
    assert speech > peak  # the earlier grid (all 8 kHz, peak cells) loses its upper bands


def test_a_quiet_tail_takes_few_slices_when_slices_share_the_loudness():
    grid = np.full((1, 10), -70.0)
    grid[0, :2] = [0.0, -10.0]  # two loud columns, then eight near the floor

    by_loudness = pool_loudness(grid, 4, range_db=40)
    by_duration = pool_time(grid, 4)

    assert by_loudness[0].min() > -15  # the two loud columns fill all four slices
    assert by_duration[0, 1:].max() < -60  # equal durations leave it one


def test_the_earlier_grid_is_still_there_as_settings(spoken_seven):
    earlier = {**SPEECH, "mels": 32, "frames": 24, "fmin": 0.0, "fmax": 8000.0}
    earlier.update(loudness_slices_db=0.0, cells="peak")

    settings, defaults = (
        featurize_audio(spoken_seven, **earlier),
        featurize_audio(spoken_seven, mels=32, frames=24),
    )
    assert np.array_equal(settings.ids, defaults.ids)
    assert np.array_equal(settings.weights, defaults.weights)
    assert vocabulary_size("audio", earlier) == 32 * 24


def test_cells_must_name_a_kind_of_cells(spoken_seven):
    with pytest.raises(ValueError, match="band_deviations"):
        featurize_audio(spoken_seven, cells="loud")


# The band-summary grid the music model uses (examples/music_phrases.py TRAIN_FLAGS).
MUSIC = {"cells": "band_summary", "mels": 64, "threshold_db": -60.0, "fmin": 0.0, "fmax": 8000.0}


@pytest.fixture(scope="module")
def piano_chords(tmp_path_factory) -> list[pathlib.Path]:
    """One chord on an acoustic grand piano (FluidR3), from C3 and an octave higher."""
    chord = Phrase("chord", ((0, 0.0, 2.0), (4, 0.0, 2.0), (7, 0.0, 2.0)))
    clips = [Clip(0, chord, root, velocity=90, bpm=120) for root in (48, 60)]
    return write_music(tmp_path_factory.mktemp("piano"), clips)


def test_band_summary_is_three_statistics_of_each_band_without_time_slices(piano_chords):
    features = featurize_audio(piano_chords[0].read_bytes(), **MUSIC, frames=8)

    assert vocabulary_size("audio", {**SPEECH, **MUSIC, "frames": 8}) == 64 * 3
    assert vocabulary_size("audio", {**SPEECH, **MUSIC, "frames": 24}) == 64 * 3
    assert 0 <= features.ids.min() and features.ids.max() < 64 * 3
    assert features.weights.min() > 0 and features.weights.max() == pytest.approx(1.0)


def test_band_summary_keeps_most_ids_an_octave_higher(piano_chords):
    low, high = (featurize_audio(path.read_bytes(), **MUSIC) for path in piano_chords)

    # a timbre's long-term spectrum moves little with the pitch it plays
    assert len(set(low.ids) & set(high.ids)) / len(set(low.ids) | set(high.ids)) > 0.9


def test_band_summary_is_the_same_three_times_louder(piano_chords):
    samples, rate = soundfile.read(piano_chords[0], dtype="float32")
    louder = io.BytesIO()
    soundfile.write(louder, 3 * samples, rate, format="WAV", subtype="FLOAT")

    original = featurize_audio(piano_chords[0].read_bytes(), **MUSIC)
    features = featurize_audio(louder.getvalue(), **MUSIC)

    np.testing.assert_array_equal(features.ids, original.ids)
    np.testing.assert_allclose(features.weights, original.weights, atol=1e-4)
