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

from embedbeam.transforms.sparse import BatchResult, SparseFeatures, apply_each, featurize_each
from embedbeam.transforms.sparse.audio import audio_vocabulary_size, featurize_audio
from embedbeam.transforms.sparse.ids import id_tokens
from embedbeam.transforms.sparse.image import (
    featurize_image,
    featurize_images,
    image_vocabulary_size,
)
from embedbeam.transforms.sparse.text import tokenize
from embedbeam.transforms.sparse.vocabulary import TokenFeatures, VocabularyTransform

Featurizer = Callable[[bytes], SparseFeatures | TokenFeatures]
BatchFeaturizer = Callable[[Sequence[bytes]], BatchResult]


def _tokenize_text(data: bytes, bigrams: bool) -> TokenFeatures:
    return TokenFeatures(tokenize(data, bigrams=bigrams))


def _id_tokens(data: bytes) -> TokenFeatures:
    return TokenFeatures(id_tokens(data))


EXTENSIONS: Mapping[str, tuple[str, ...]] = {
    "image": ("png", "jpg", "jpeg", "gif", "bmp", "webp", "pgm"),
    "text": ("txt", "md", "jsonl"),
    "audio": ("wav", "flac", "ogg", "oga", "mp3"),
}
_MODALITY_BY_EXTENSION = {ext: modality for modality, exts in EXTENSIONS.items() for ext in exts}


@dataclasses.dataclass(frozen=True)
class Modality:
    featurize: Callable[..., SparseFeatures | TokenFeatures]
    settings: tuple[str, ...]  # keyword arguments of `featurize`, recorded in model.json
    # Number of possible ids, from the settings; None where TFT's vocabulary decides it.
    vocabulary_size: Callable[[Mapping[str, Any]], int] | None
    # A prefix of an oversize file still featurizes (audio is capped in time anyway),
    # so it is read up to the size limit instead of becoming a dead letter.
    reads_prefix: bool = False
    # Settings of TFT's vocabulary; a modality with some yields tokens, which the
    # vocabulary learned at training (part of the model) turns into ids.
    vocabulary_settings: tuple[str, ...] = ()
    # The same featurizer over a batch at once (numpy over the batch), where there is one.
    featurize_batch: Callable[..., BatchResult] | None = None
    # Featurizing in child processes pays for their start-up (bench/README.md): for
    # images (0.2 s to start; decoding is Python holding the GIL). Not for audio
    # (librosa takes 2.4 s to start, its work leaves the GIL already), nor for
    # vocabularies (a child would load TensorFlow for TFT: 5-6 s).
    featurizes_in_processes: bool = False

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
        featurizes_in_processes=True,
    ),
    "audio": Modality(
        featurize_audio,
        ("mels", "frames", "threshold_db", "max_seconds"),
        lambda settings: audio_vocabulary_size(settings["mels"], settings["frames"]),
        reads_prefix=True,
    ),
    "text": Modality(
        _tokenize_text, ("bigrams",), None, vocabulary_settings=("top_k", "oov_buckets")
    ),
    "ids": Modality(_id_tokens, (), None, vocabulary_settings=("top_k", "oov_buckets")),
}
SUPPORTED = tuple(MODALITIES)


def modality_for_uri(uri: str) -> str | None:
    """The modality a file's extension names, or None for an unknown extension."""
    extension = posixpath.splitext(uri)[1].lower().lstrip(".")
    return _MODALITY_BY_EXTENSION.get(extension)


def make_featurizer(
    modality: str, settings: Mapping[str, Any], vocabulary_dir: str | None = None
) -> Featurizer:
    """The featurizer of `modality`, configured exactly as at training time.

    For a vocabulary modality it yields TokenFeatures, unless `vocabulary_dir`
    (a model directory) is given: then the model's TFT graph turns the tokens
    into SparseFeatures, as at embedding time.
    """
    spec = _spec(modality)
    featurize = functools.partial(
        spec.featurize, **{name: settings[name] for name in spec.settings}
    )
    if spec.uses_vocabulary and vocabulary_dir is not None:
        transform = VocabularyTransform(vocabulary_dir)
        return lambda data: transform(featurize(data))
    return featurize


def make_batch_featurizer(
    modality: str, settings: Mapping[str, Any], vocabulary_dir: str
) -> BatchFeaturizer:
    """`make_featurizer` over a batch of inputs: one SparseRows for all that featurize.

    Image batches run through numpy together; a vocabulary modality tokenizes
    each input and applies the model's TFT graph once to the whole batch.
    """
    spec = _spec(modality)
    kwargs = {name: settings[name] for name in spec.settings}
    if spec.featurize_batch is not None:
        return functools.partial(spec.featurize_batch, **kwargs)
    featurize = functools.partial(spec.featurize, **kwargs)
    if not spec.uses_vocabulary:
        return functools.partial(featurize_each, featurize)
    transform = VocabularyTransform(vocabulary_dir)

    def featurize_documents(datas: Sequence[bytes]) -> BatchResult:
        documents, kept, failures = apply_each(featurize, datas)
        return BatchResult(transform.transform_batch(documents), kept, failures)

    return featurize_documents


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
