"""Audio -> the loud cells of a small log-mel grid.

librosa decodes any format libsndfile reads (wav, flac, ogg/oga, mp3), resampled
to 16 kHz mono and capped at `max_seconds` (only that much is decoded). Leading
and trailing silence is trimmed, a log-mel spectrogram (`mels` bands) is pooled
onto `frames` equal time slices, so a fast and a slow speaker fill the same
grid, and re-referenced to the clip's loudest cell (0 dB). Cells louder than
`threshold_db` are the active features: id = band * frames + slice, weight =
loudness mapped from (threshold_db, 0] onto (0, 1].
"""

from __future__ import annotations

import io
import warnings

import numpy as np

from embedbeam.transforms.sparse.features import InvalidInput, SparseFeatures

SAMPLE_RATE = 16_000
DEFAULT_MELS = 32
DEFAULT_FRAMES = 24
DEFAULT_THRESHOLD_DB = -60.0
DEFAULT_MAX_SECONDS = 10.0
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
) -> SparseFeatures:
    """Decodes `data` and returns the loud cells of its pooled log-mel grid.

    Raises InvalidInput with reason `undecodable_audio`, `empty_audio` or
    `silent_audio`.
    """
    samples = _decode(data, max_seconds)
    if samples.size == 0:
        raise InvalidInput("empty_audio", "the file decodes to no samples")
    return grid_features(samples, mels, frames, threshold_db)


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


def _decode(data: bytes, max_seconds: float) -> np.ndarray:
    import librosa

    try:
        with warnings.catch_warnings():
            # librosa warns before falling back to audioread; the failure is reported below.
            warnings.simplefilter("ignore")
            samples, _ = librosa.load(
                io.BytesIO(data), sr=SAMPLE_RATE, mono=True, duration=max_seconds
            )
    except Exception as error:  # noqa: BLE001 - soundfile, audioread and numpy all raise their own
        raise InvalidInput("undecodable_audio", f"{type(error).__name__}: {error}") from error
    return samples
