"""Audio -> the cells of a small log-mel grid.

libsndfile (soundfile) decodes any format it reads (wav in any of its encodings,
flac, ogg/oga, mp3), mixed to mono and resampled to 16 kHz by soxr (librosa's
`load` does exactly this). Leading and trailing silence is trimmed (where the
whole signal is quiet, or, `trim` band, where the grid's band is), a log-mel
spectrogram (`mels` bands from `fmin` to `fmax`) is pooled onto `frames` time
slices, so a fast and a slow speaker fill the same grid: slices of equal
duration, or (`loudness_slices_db`) of equal shares of the loudness, so that a
held vowel or a noisy tail does not take half the grid. Loudness is relative to
the clip's loudest cell. The features are either each cell's deviation from its
band's mean (`band_deviations`: the level and the channel, a telephone line or a
microphone, fall out), or the cells louder than `threshold_db` (`peak`), or, with
no time slices at all, a few statistics of each band over the clip's sounding
frames (`band_summary`: the long-term spectrum a timbre is made of, whatever the
melody or the rhythm). See `grid_features` for the ids and weights,
bench/audio_voices.md and bench/music_quality.md for the choices.

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

import functools
import io
import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from embedbeam.transforms.sparse.features import InvalidInput, SparseFeatures

SAMPLE_RATE = 16_000
# What `embedbeam train` uses, chosen in bench/audio_voices.md. The keyword defaults of
# fmin, fmax, loudness_slices_db and cells are the grid from before those settings,
# which a model.json without them was trained on.
DEFAULT_MELS = 20
DEFAULT_FRAMES = 16
DEFAULT_THRESHOLD_DB = -60.0
DEFAULT_FMIN = 100.0  # the telephone band: a wideband clip and an 8 kHz call fill the same bands
DEFAULT_FMAX = 3800.0
DEFAULT_LOUDNESS_SLICES_DB = 40.0
CELLS = ("peak", "band_deviations", "band_summary", "band_deviations_two_scales")
DEFAULT_CELLS = "band_deviations"
DEFAULT_MAX_SECONDS = 10.0
DEFAULT_MAX_WINDOWS = 24
_SILENCE_TOP_DB = 30.0
TRIMS = ("samples", "band")
DEFAULT_TRIM = "samples"
# band trim: a frame sounds when its band's power is within _VOICE_TOP_DB of the loudest
# frame's and _VOICE_OVER_FLOOR_DB above the noise floor (the quietest tenth of the frames),
# though it never needs to be within less than _VOICE_MIN_TOP_DB of the loudest
_VOICE_TOP_DB = 35.0
_VOICE_OVER_FLOOR_DB = 10.0
_VOICE_MIN_TOP_DB = 20.0
_MIN_VOICED_FRAMES = 6  # shorter bursts (a thump, a click) are not speech: 60 ms
_MAX_PAUSE_FRAMES = 10  # shorter gaps (a stop consonant) join their neighbours: 100 ms
_MIN_PEAK = 1e-4
_MIN_DEVIATION = 0.02  # band deviations (in standard deviations) this small are left out
_FULL_DEVIATION = 3.0  # and this large or larger weigh 1
# band_summary: each band's mean, maximum and 10th percentile (dB) over the sounding frames
_BAND_STATS = (np.mean, np.max, functools.partial(np.percentile, q=10))


def audio_vocabulary_size(mels: int, frames: int, cells: str = "peak") -> int:
    """Number of possible feature ids: one per cell of the mel x time grid for `peak`
    cells, two for `band_deviations` (louder and quieter than the band's mean), one per
    band and statistic for `band_summary` (which has no time slices); two for each cell of
    both grids for `band_deviations_two_scales`."""
    if cells == "band_summary":
        return mels * len(_BAND_STATS)
    if cells == "band_deviations_two_scales":
        return 2 * mels * (frames + coarse_frames(frames))
    return mels * frames * (1 if cells == "peak" else 2)


def coarse_frames(frames: int) -> int:
    """The slices of the coarse grid beside a `frames`-slice one (band_deviations_two_scales)."""
    return max(frames // 4, 1)


def audio_trim(value: str) -> str:
    """`value` if it names a way of trimming silence (TRIMS), else ValueError."""
    if value not in TRIMS:
        raise ValueError(f"trim must be one of {', '.join(TRIMS)}, not {value!r}")
    return value


def audio_cells(value: str) -> str:
    """`value` if it names a kind of cells (CELLS), else ValueError."""
    if value not in CELLS:
        raise ValueError(f"cells must be one of {', '.join(CELLS)}, not {value!r}")
    return value


def featurize_audio(
    data: bytes,
    max_seconds: float = DEFAULT_MAX_SECONDS,
    max_windows: int = DEFAULT_MAX_WINDOWS,
    **grid: Any,
) -> SparseFeatures:
    """Decodes `data` and returns the loud cells of its pooled log-mel grid (of the
    mean of its windows' grids, for a clip longer than `max_seconds`); `grid` holds
    the keyword settings of `grid_features`.

    Raises InvalidInput with reason `undecodable_audio`, `empty_audio` or
    `silent_audio`.
    """
    grids, silence = [], None
    for samples in _decode(data, max_seconds, max_windows):
        if samples.size == 0:
            continue
        try:
            grids.append(grid_features(samples, **grid))
        except InvalidInput as error:
            if error.reason != "silent_audio":
                raise
            silence = error
    if not grids:
        raise silence or InvalidInput("empty_audio", "the file decodes to no samples")
    return _mean_grid(grids)


def grid_features(
    samples: np.ndarray,
    mels: int = DEFAULT_MELS,
    frames: int = DEFAULT_FRAMES,
    threshold_db: float = DEFAULT_THRESHOLD_DB,
    fmin: float = 0.0,
    fmax: float = SAMPLE_RATE / 2,
    loudness_slices_db: float = 0.0,
    cells: str = "peak",
    trim: str = "samples",
) -> SparseFeatures:
    """The pooled log-mel grid (`mels` bands from `fmin` to `fmax` Hz, `frames` slices)
    of 16 kHz mono `samples`, as sparse features.

    Silence is trimmed from the start and the end: `samples` cuts where the whole
    signal is 30 dB under its loudest, `band` where the grid's band is (`voiced_columns`:
    a low thump or a click before or after a word is cut too).
    Loudness is in dB relative to the clip's loudest cell, floored at `threshold_db`.
    Slices hold equal shares of the loudness above `loudness_slices_db` under the
    loudest moment (0: equal durations), so a held vowel or a noisy tail takes few
    slices. `band_deviations` cells are each cell's deviation from its band's mean over
    the clip (which removes the channel and the level), in the clip's standard
    deviations: id = 2 * (band * frames + slice), + 1 where quieter than the mean.
    `peak` cells are those louder than `threshold_db`, their loudness the weight.
    `band_summary` ignores `frames` and the slicing: see `band_summary`.
    `band_deviations_two_scales` adds the band deviations of a coarse grid of
    `coarse_frames(frames)` slices (ids after the fine grid's), which a word spoken with
    other timing shifts less.

    Raises InvalidInput with reason `silent_audio`.
    """
    import librosa

    if np.abs(samples).max() < _MIN_PEAK:
        raise InvalidInput("silent_audio", "every sample is silent")
    if audio_trim(trim) == "samples":
        samples, _ = librosa.effects.trim(samples, top_db=_SILENCE_TOP_DB)
    power = librosa.feature.melspectrogram(
        y=samples, sr=SAMPLE_RATE, n_mels=mels, n_fft=512, hop_length=160, fmin=fmin, fmax=fmax
    )
    if trim == "band":
        power = power[:, voiced_columns(power)]
    decibels = librosa.power_to_db(power, ref=np.max)
    if audio_cells(cells) == "band_summary":
        return band_summary(decibels, threshold_db)
    if cells != "peak":
        decibels = np.maximum(decibels, threshold_db)
    loudness = _pool(decibels, frames, loudness_slices_db)
    if cells == "peak":
        return peak_features(loudness, threshold_db)
    if cells == "band_deviations":
        return band_deviations(loudness)
    fine = band_deviations(loudness)
    coarse = band_deviations(_pool(decibels, coarse_frames(frames), loudness_slices_db))
    return SparseFeatures(
        ids=np.concatenate([fine.ids, coarse.ids + 2 * loudness.size]),
        weights=np.concatenate([fine.weights, coarse.weights]),
    )


def _pool(decibels: np.ndarray, frames: int, loudness_slices_db: float) -> np.ndarray:
    if loudness_slices_db > 0:
        return pool_loudness(decibels, frames, loudness_slices_db)
    return pool_time(decibels, frames)


def voiced_columns(power: np.ndarray) -> slice:
    """The columns of the mel `power` grid from the start of its first run of sound to
    the end of its last: a column sounds when the band's total power is loud enough (see
    _VOICE_TOP_DB: a hiss does not sound, a quiet consonant in silence does), runs closer
    than _MAX_PAUSE_FRAMES are one, and runs shorter than _MIN_VOICED_FRAMES (a thump, a
    click) do not count. All columns if no run is long enough."""
    loudness = 10 * np.log10(np.maximum(power.sum(axis=0), 1e-20))
    loudest, floor = loudness.max(), np.percentile(loudness, 10)
    threshold = max(
        loudest - _VOICE_TOP_DB, min(floor + _VOICE_OVER_FLOOR_DB, loudest - _VOICE_MIN_TOP_DB)
    )
    sounding = np.flatnonzero(loudness > threshold)
    breaks = np.flatnonzero(np.diff(sounding) > _MAX_PAUSE_FRAMES)
    starts = sounding[np.append(0, breaks + 1)]
    ends = sounding[np.append(breaks, sounding.size - 1)] + 1
    long_enough = np.flatnonzero(ends - starts >= _MIN_VOICED_FRAMES)
    if long_enough.size == 0:
        return slice(None)
    return slice(int(starts[long_enough[0]]), int(ends[long_enough[-1]]))


def peak_features(loudness: np.ndarray, threshold_db: float) -> SparseFeatures:
    """The cells louder than `threshold_db` relative to the loudest, loudness mapped
    from (threshold_db, 0] onto weights (0, 1]."""
    loudness = loudness - loudness.max()
    ids = np.flatnonzero(loudness > threshold_db)
    weights = 1.0 - loudness.ravel()[ids] / threshold_db
    return SparseFeatures(ids=ids.astype(np.int64), weights=weights.astype(np.float32))


def band_deviations(loudness: np.ndarray) -> SparseFeatures:
    """Each cell's deviation from its band's mean, in standard deviations of the grid's
    deviations; louder and quieter than the mean are two ids, weight |deviation| / 3
    (at most 1), so the first layer sees the signed value."""
    deviations = loudness - loudness.mean(axis=1, keepdims=True)
    scaled = (deviations / max(float(deviations.std()), 1e-6)).ravel()
    cells = np.flatnonzero(np.abs(scaled) > _MIN_DEVIATION)
    ids = 2 * cells + (scaled[cells] < 0)
    weights = np.minimum(np.abs(scaled[cells]) / _FULL_DEVIATION, 1.0)
    return SparseFeatures(ids=ids.astype(np.int64), weights=weights.astype(np.float32))


def band_summary(decibels: np.ndarray, threshold_db: float) -> SparseFeatures:
    """Each band's statistics (_BAND_STATS) over the sounding frames of the dB grid (the
    frames whose loudest band is within 30 dB of the loudest frame's, so the gaps of a
    staccato phrase do not count), as the peak features of a bands x statistics grid:
    id = band * len(_BAND_STATS) + statistic."""
    sounding = decibels[:, decibels.max(axis=0) > decibels.max() - _SILENCE_TOP_DB]
    summary = np.stack([statistic(sounding, axis=1) for statistic in _BAND_STATS], axis=1)
    return peak_features(summary, threshold_db)


def pool_time(grid: np.ndarray, frames: int) -> np.ndarray:
    """Averages the columns of `grid` into `frames` equal slices (repeats them if fewer)."""
    columns = grid.shape[1]
    starts = np.floor(np.linspace(0, columns, frames + 1)[:-1]).astype(np.int64)
    sums = np.add.reduceat(grid, starts, axis=1)
    counts = np.maximum(np.diff(np.append(starts, columns)), 1)
    return sums / counts


def pool_loudness(grid: np.ndarray, frames: int, range_db: float) -> np.ndarray:
    """Averages the columns of the dB `grid` into `frames` slices of equal shares of
    loudness: a column's share is how far its loudest band is above `range_db` under
    the grid's loudest, and each column goes to the slice its share's middle falls in,
    weighted by its share. A slice no column falls in repeats its nearest neighbour."""
    column_peaks = grid.max(axis=0)
    shares = np.maximum(column_peaks - (column_peaks.max() - range_db), 0.0) + 1e-3
    middles = (np.cumsum(shares) - shares / 2) / shares.sum()
    slices = np.minimum((middles * frames).astype(np.int64), frames - 1)
    sums = np.zeros((frames, grid.shape[0]))
    np.add.at(sums, slices, (grid * shares).T)
    counts = np.bincount(slices, weights=shares, minlength=frames)
    filled = np.flatnonzero(counts > 0)
    nearest = filled[np.abs(np.arange(frames)[:, None] - filled[None, :]).argmin(axis=1)]
    return (sums[nearest] / counts[nearest, None]).T


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
