"""Which modality an input is, and the featurizer that turns it into sparse features.

Each supported modality names its featurizer, the settings that featurizer
takes (recorded in model.json at training, so embedding reuses them exactly),
and the size of its feature-id space: fixed by the settings for grids (image,
audio), learned by TFT as a vocabulary for tokens (text, ids).
"""

from __future__ import annotations

import dataclasses
import functools
import posixpath
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from embedbeam.transforms.sparse import (
    BatchResult,
    SparseFeatures,
    TokenRows,
    apply_each,
    featurize_each,
)
from embedbeam.transforms.sparse.audio import (
    DEFAULT_CELLS,
    DEFAULT_FMAX,
    DEFAULT_FMIN,
    DEFAULT_FRAMES,
    DEFAULT_LOUDNESS_SLICES_DB,
    DEFAULT_MAX_SECONDS,
    DEFAULT_MAX_WINDOWS,
    DEFAULT_MELS,
    DEFAULT_THRESHOLD_DB,
    DEFAULT_TRIM,
    audio_cells,
    audio_trim,
    audio_vocabulary_size,
    featurize_audio,
    warm_up_audio,
)
from embedbeam.transforms.sparse.ids import id_tokens
from embedbeam.transforms.sparse.image import (
    DEFAULT_GRID,
    DEFAULT_THRESHOLD,
    featurize_image,
    featurize_images,
    image_vocabulary_size,
)
from embedbeam.transforms.sparse.settings import VOCABULARY, Setting
from embedbeam.transforms.sparse.text import char_ngram_range, tokenize
from embedbeam.transforms.sparse.vocabulary import VocabularyTransform

BatchFeaturizer = Callable[[Sequence[bytes]], BatchResult]


EXTENSIONS: Mapping[str, tuple[str, ...]] = {
    "image": ("png", "jpg", "jpeg", "gif", "bmp", "webp", "pgm"),
    "text": ("txt", "md", "jsonl"),
    "audio": ("wav", "flac", "ogg", "oga", "mp3"),
}
_MODALITY_BY_EXTENSION = {ext: modality for modality, exts in EXTENSIONS.items() for ext in exts}


@dataclasses.dataclass(frozen=True)
class Modality:
    featurize: Callable[..., SparseFeatures | list[str]]  # one input: features, or tokens
    settings: tuple[str, ...]  # keyword arguments of `featurize`, recorded in model.json
    # Number of possible ids, from the settings; None where TFT's vocabulary decides it.
    vocabulary_size: Callable[[Mapping[str, Any]], int] | None
    # A prefix of an oversize file still featurizes (audio: windows spread over the
    # part read), so it is read up to the size limit instead of becoming a dead letter.
    reads_prefix: bool = False
    # Settings of TFT's vocabulary; a modality with some yields tokens, which the
    # vocabulary learned at training (part of the model) turns into ids.
    vocabulary_settings: tuple[str, ...] = ()
    # The same featurizer over a batch at once (numpy over the batch), where there is one.
    featurize_batch: Callable[..., BatchResult] | None = None
    # Jobs of at least this many inputs featurize in child processes (None: never), which
    # then repay their start-up: for images, whose decoding is Python holding the GIL
    # and whose child starts quickly, and for audio, whose featurizing is most of a
    # job's work. Not for vocabularies (a child would load TensorFlow for TFT).
    # Measured in bench/README.md ('Why the code is this way').
    featurize_processes_from: int | None = None
    # One child per core, not per core the model's process leaves idle: where
    # featurizing is nearly all the work (audio), that process mostly waits.
    featurize_process_per_core: bool = False
    # Run once in a featurizing process before its first batch, to pay the featurizer's
    # imports (librosa) while the job starts.
    warm_up: Callable[[], None] | None = None
    # What a user may set of `settings` and `vocabulary_settings`, in that order: the
    # name, type, default and meaning of each, from which `embedbeam train` makes its
    # flags (pipeline/cli/flags.py). Modalities that share a setting share its flag.
    flags: tuple[Setting, ...] = ()

    def __post_init__(self) -> None:
        declared = tuple(setting.name for setting in self.flags)
        if declared != self.recorded_settings:
            raise ValueError(
                f"flags {declared} must declare the settings {self.recorded_settings}, in order"
            )

    @property
    def uses_vocabulary(self) -> bool:
        return bool(self.vocabulary_settings)

    @property
    def recorded_settings(self) -> tuple[str, ...]:
        """Everything model.json keeps so embedding featurizes exactly as training did."""
        return self.settings + self.vocabulary_settings


MODALITIES: Mapping[str, Modality] = {
    "image": Modality(
        featurize_image,
        ("grid", "threshold"),
        lambda settings: image_vocabulary_size(settings["grid"]),
        featurize_batch=featurize_images,
        featurize_processes_from=50_000,
        flags=(
            Setting(
                "grid",
                int,
                DEFAULT_GRID,
                "inputs are fitted onto a grid x grid raster; each cell is one feature id.",
            ),
            Setting(
                "threshold",
                float,
                DEFAULT_THRESHOLD,
                "cells brighter than this (0..1, after inverting light backgrounds) are active.",
            ),
        ),
    ),
    "audio": Modality(
        featurize_audio,
        (
            "mels",
            "frames",
            "threshold_db",
            "max_seconds",
            "max_windows",
            "fmin",
            "fmax",
            "loudness_slices_db",
            "cells",
            "trim",
        ),
        lambda settings: audio_vocabulary_size(
            settings["mels"], settings["frames"], settings.get("cells", "peak")
        ),
        reads_prefix=True,
        featurize_processes_from=2_000,
        featurize_process_per_core=True,
        warm_up=warm_up_audio,
        flags=(
            Setting("mels", int, DEFAULT_MELS, "mel bands of the spectrogram grid."),
            Setting(
                "frames",
                int,
                DEFAULT_FRAMES,
                "time slices the (silence-trimmed) clip is pooled onto.",
            ),
            Setting(
                "threshold_db",
                float,
                DEFAULT_THRESHOLD_DB,
                "cells quieter than this many dB relative to the clip's loudest count as "
                "this quiet (peak cells: are left out).",
            ),
            Setting(
                "max_seconds",
                float,
                DEFAULT_MAX_SECONDS,
                "a clip up to this many seconds is one grid; a longer one is windows this "
                "long, whose grids are averaged.",
            ),
            Setting(
                "max_windows",
                int,
                DEFAULT_MAX_WINDOWS,
                "a long clip is at most this many windows, spread evenly from its start to "
                "its end.",
            ),
            Setting("fmin", float, DEFAULT_FMIN, "lowest frequency of the mel bands, in Hz."),
            Setting("fmax", float, DEFAULT_FMAX, "highest frequency of the mel bands, in Hz."),
            Setting(
                "loudness_slices_db",
                float,
                DEFAULT_LOUDNESS_SLICES_DB,
                "slices hold equal shares of the loudness above this many dB under the "
                "loudest moment, so quiet tails take few (0: equal durations).",
            ),
            Setting(
                "cells",
                str,
                DEFAULT_CELLS,
                "band_deviations: each cell's deviation from its band's mean (level and "
                "channel removed); band_deviations_two_scales: those and a coarse grid's "
                "of a quarter the slices; peak: the cells louder than --threshold-db; "
                "band_summary: each band's mean, maximum and 10th percentile over the "
                "sounding frames, without time slices (a timbre, for music).",
                parse=audio_cells,
            ),
            Setting(
                "trim",
                str,
                DEFAULT_TRIM,
                "band: silence is cut where the grid's band is quiet, and bursts under 60 ms "
                "(a thump, a click) do not count as sound; samples: where the whole signal is.",
                parse=audio_trim,
            ),
        ),
    ),
    "text": Modality(
        tokenize,
        ("bigrams", "char_ngrams"),
        None,
        vocabulary_settings=("top_k", "oov_buckets"),
        flags=(
            Setting("bigrams", bool, False, "add neighbouring-token bigrams to the tokens."),
            Setting(
                "char_ngrams",
                str,
                "",
                "add each word's character n-grams of MIN:MAX (or N) characters, e.g. 2:4, "
                "so unseen words share features with their cousins (default: none).",
                parse=char_ngram_range,
            ),
            *VOCABULARY,
        ),
    ),
    "ids": Modality(
        id_tokens,
        (),
        None,
        vocabulary_settings=("top_k", "oov_buckets"),
        flags=VOCABULARY,
    ),
}
SUPPORTED = tuple(MODALITIES)


def modality_for_uri(uri: str) -> str | None:
    """The modality a file's extension names, or None for an unknown extension."""
    extension = posixpath.splitext(uri)[1].lower().lstrip(".")
    return _MODALITY_BY_EXTENSION.get(extension)


def make_batch_featurizer(
    modality: str, settings: Mapping[str, Any], vocabulary_dir: str | None = None
) -> BatchFeaturizer:
    """The featurizer of `modality` over a batch of inputs, configured exactly as the
    model recorded it: one set of rows for all inputs that featurize.

    Image batches run through numpy together. A vocabulary modality tokenizes
    each input; with `vocabulary_dir` (a model directory) the model's TFT graph
    turns the whole batch into SparseRows at once, as embedding does; without
    one the rows are TokenRows, which training hands to TFT to learn it.
    """
    spec = _spec(modality)
    # A setting added after a model was trained is missing from its model.json: the
    # featurizer's default (off) then featurizes as that model was trained.
    kwargs = {name: settings[name] for name in spec.settings if name in settings}
    if spec.featurize_batch is not None:
        return functools.partial(spec.featurize_batch, **kwargs)
    featurize = functools.partial(spec.featurize, **kwargs)
    if not spec.uses_vocabulary:
        return functools.partial(featurize_each, featurize)
    to_ids = VocabularyTransform(vocabulary_dir) if vocabulary_dir is not None else None

    def featurize_documents(datas: Sequence[bytes]) -> BatchResult:
        documents, kept, failures = apply_each(featurize, datas)
        tokens = TokenRows.stack(documents)
        return BatchResult(tokens if to_ids is None else to_ids(tokens), kept, failures)

    return featurize_documents


def make_featurizer(
    modality: str, settings: Mapping[str, Any], vocabulary_dir: str | None = None
) -> Callable[[bytes], SparseFeatures]:
    """One input at a time (a `similar` query, a plain loop): the batch featurizer on a
    batch of one, so a single input is featurized exactly as in a job."""
    featurize_batch = make_batch_featurizer(modality, settings, vocabulary_dir)
    return lambda data: featurize_batch([data]).single()


def vocabulary_size(modality: str, settings: Mapping[str, Any]) -> int:
    """Number of possible feature ids of a grid modality (image, audio)."""
    size = _spec(modality).vocabulary_size
    if size is None:
        raise ValueError(f"the TFT vocabulary learned in training sizes {modality!r} ids")
    return size(settings)


def _spec(modality: str) -> Modality:
    if modality not in MODALITIES:
        raise ValueError(
            f"modality {modality!r} is not supported yet; supported: {', '.join(SUPPORTED)}"
        )
    return MODALITIES[modality]
