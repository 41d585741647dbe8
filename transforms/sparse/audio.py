"""Audio -> the loud cells of a small log-mel grid.

libsndfile (soundfile) decodes any format it reads (wav in any of its encodings,
flac, ogg/oga, mp3), mixed to mono and resampled to 16 kHz by soxr (librosa's
`load` does exactly this). Leading and trailing silence is trimmed, a log-mel
spectrogram (`mels` bands) is pooled onto `frames` equal time slices, so a fast
and a slow speaker fill the same grid, and re-referenced to the clip's loudest
cell (0 dB). Cells louder than `threshold_db` are the active features: id =
band * frames + slice, weight = loudness mapped from (threshold_db, 0] onto (0, 1].

A clip of at most `max_seconds` is one grid. A longer one (a song) is cut into
windows of `max_seconds`: end to end, slightly overlapping so they cover the
clip, or, beyond `max_windows` of them, that many spread evenly from its start
to its end. Each window is decoded on its own (a seek, then its frames only)
and gridded as a clip; windows without sound are left out, and the clip's
features are the mean of the other windows' grids (a cell a window lacks counts
0). With the defaults a 4-minute song is 24 windows of 10 s end to end, and a
2-hour file 24 windows of 10 s, one every 5 minutes: decoding and featurizing
are bounded by the windows, memory by one window beside the file's bytes (of
which embedbeam reads at most `--max-input-bytes`: a longer file is windowed
over that prefix).
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator

import numpy as np

from embedbeam.transforms.sparse.features import InvalidInput, SparseFeatures

SAMPLE_RATE = 16_000
DEFAULT_MELS = 32
DEFAULT_FRAMES = 24
DEFAULT_THRESHOLD_DB = -60.0
DEFAULT_MAX_SECONDS = 10.0
DEFAULT_MAX_WINDOWS = 24
_SILENCE_TOP_DB = 30.0
_MIN_PEAK = 1e-4


def audio_vocabulary_size(mels: int, frames: int) -> int:
    """Number of possible feature ids: one per cell of the mel x time grid."""
    return mels * frames


def featurize_audio(
    data: bytes,
    mels: int = DEFAULT_MELS,
    frames: int = DEFAULT_FRAMES,
    threshold_db: float = DEFAULT_THRESHOLD_DB,
    max_seconds: float = DEFAULT_MAX_SECONDS,
    max_windows: int = DEFAULT_MAX_WINDOWS,
) -> SparseFeatures:
    """Decodes `data` and returns the loud cells of its pooled log-mel grid (of the
    mean of its windows' grids, for a clip longer than `max_seconds`).

    Raises InvalidInput with reason `undecodable_audio`, `empty_audio` or
    `silent_audio`.
    """
    grids, silence = [], None
    for samples in _decode(data, max_seconds, max_windows):
        if samples.size == 0:
            continue
        try:
            grids.append(grid_features(samples, mels, frames, threshold_db))
        except InvalidInput as error:
            if error.reason != "silent_audio":
                raise
            silence = error
    if not grids:
        raise silence or InvalidInput("empty_audio", "the file decodes to no samples")
    return _mean_grid(grids)


def grid_features(
    samples: np.ndarray, mels: int, frames: int, threshold_db: float
) -> SparseFeatures:
    """The loud cells of the pooled log-mel grid of 16 kHz mono `samples`.

    Raises InvalidInput with reason `silent_audio`.
    """
    import librosa

    if np.abs(samples).max() < _MIN_PEAK:
        raise InvalidInput("silent_audio", "every sample is silent")
    voiced, _ = librosa.effects.trim(samples, top_db=_SILENCE_TOP_DB)
    power = librosa.feature.melspectrogram(
        y=voiced, sr=SAMPLE_RATE, n_mels=mels, n_fft=512, hop_length=160
    )
    loudness = pool_time(librosa.power_to_db(power, ref=np.max), frames)
    loudness -= loudness.max()
    ids = np.flatnonzero(loudness > threshold_db)
    weights = 1.0 - loudness.ravel()[ids] / threshold_db
    return SparseFeatures(ids=ids.astype(np.int64), weights=weights.astype(np.float32))


def pool_time(grid: np.ndarray, frames: int) -> np.ndarray:
    """Averages the columns of `grid` into `frames` equal slices (repeats them if fewer)."""
    columns = grid.shape[1]
    starts = np.floor(np.linspace(0, columns, frames + 1)[:-1]).astype(np.int64)
    sums = np.add.reduceat(grid, starts, axis=1)
    counts = np.maximum(np.diff(np.append(starts, columns)), 1)
    return sums / counts


def warm_up_audio() -> None:
    """Featurizes a tenth of a second of 8 kHz tone, so that a featurizing process pays
    librosa's imports and first calls while the job starts, not on its first batch."""
    import soundfile

    buffer = io.BytesIO()
    tone = 0.5 * np.sin(2 * np.pi * 440 * np.arange(800) / 8000)
    soundfile.write(buffer, tone.astype(np.float32), 8000, format="WAV")
    featurize_audio(buffer.getvalue())


def _mean_grid(grids: list[SparseFeatures]) -> SparseFeatures:
    """The mean of the windows' grids, a cell missing from a window counting 0."""
    if len(grids) == 1:
        return grids[0]
    ids, where = np.unique(np.concatenate([grid.ids for grid in grids]), return_inverse=True)
    sums = np.bincount(where, weights=np.concatenate([grid.weights for grid in grids]))
    return SparseFeatures(ids=ids.astype(np.int64), weights=(sums / len(grids)).astype(np.float32))


def _decode(data: bytes, max_seconds: float, max_windows: int) -> Iterator[np.ndarray]:
    """16 kHz mono samples of each window of `data` (one window for a short clip), decoded
    one after another, so only one window is in memory at a time."""
    import soundfile

    try:
        with soundfile.SoundFile(io.BytesIO(data)) as sound:
            window = int(max_seconds * sound.samplerate)  # as librosa.load's `duration`
            for start in window_starts(sound.frames, window, max_windows):
                if start:
                    sound.seek(start)
                block = sound.read(frames=window, dtype="float32", always_2d=True)
                yield _to_mono_16k(block, sound.samplerate)
    except InvalidInput:
        raise
    except Exception as error:  # noqa: BLE001 - libsndfile, soxr and numpy all raise their own
        raise InvalidInput("undecodable_audio", f"{type(error).__name__}: {error}") from error


def window_starts(frames: int, window: int, max_windows: int) -> list[int]:
    """The first frame of each window: 0 alone for a clip up to a window long; else
    ceil(frames / window) windows (at most `max_windows`) spread evenly from the start
    to the end, so that the last one ends with the clip."""
    if frames <= window:
        return [0]
    count = min(math.ceil(frames / window), max_windows)
    return np.linspace(0, frames - window, count).round().astype(np.int64).tolist()


def _to_mono_16k(block: np.ndarray, sample_rate: int) -> np.ndarray:
    """A [frames, channels] block as librosa.load(sr=16000, mono=True) gives it: the
    channels' mean, soxr's high-quality resampler, cut or zero-padded to
    ceil(frames * 16000 / sample_rate)."""
    import soxr

    samples = np.mean(block.T, axis=0)
    if not np.isfinite(samples).all():
        raise InvalidInput("undecodable_audio", "samples are not all finite (NaN or infinity)")
    if sample_rate == SAMPLE_RATE or samples.size == 0:
        return samples
    resampled = soxr.resample(samples, sample_rate, SAMPLE_RATE, quality="soxr_hq")
    size = math.ceil(samples.size * (SAMPLE_RATE / sample_rate))
    fitted = np.zeros(size, dtype=np.float32)
    fitted[: min(size, resampled.size)] = resampled[:size]
    return fitted
