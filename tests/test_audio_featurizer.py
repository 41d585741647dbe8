"""The audio featurizer on real speech (espeak-ng), real recorded sounds and broken files."""

from __future__ import annotations

import io
import pathlib
import wave

import numpy as np
import pytest

from embedbeam.transforms.sparse import InvalidInput
from embedbeam.transforms.sparse.audio import featurize_audio, pool_time

FREEDESKTOP_SOUNDS = pathlib.Path("/usr/share/sounds/freedesktop/stereo")


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
