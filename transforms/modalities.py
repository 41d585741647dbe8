"""Which modality an input is, and the featurizer that turns it into sparse features.

Each supported modality names its featurizer, the settings that featurizer
takes (recorded in model.json at training, so embedding reuses them exactly),
and the size of its feature-id space.
"""

from __future__ import annotations

import dataclasses
import functools
import posixpath
from collections.abc import Callable, Mapping
from typing import Any

from transforms.sparse import SparseFeatures
from transforms.sparse.audio import audio_vocabulary_size, featurize_audio
from transforms.sparse.image import featurize_image, image_vocabulary_size

Featurizer = Callable[[bytes], SparseFeatures]

EXTENSIONS: Mapping[str, tuple[str, ...]] = {
    "image": ("png", "jpg", "jpeg", "gif", "bmp", "webp", "pgm"),
    "text": ("txt", "md", "jsonl"),
    "audio": ("wav", "flac", "ogg", "oga", "mp3"),
}
_MODALITY_BY_EXTENSION = {ext: modality for modality, exts in EXTENSIONS.items() for ext in exts}


@dataclasses.dataclass(frozen=True)
class Modality:
    featurize: Callable[..., SparseFeatures]
    settings: tuple[str, ...]  # keyword arguments of `featurize`, recorded in model.json
    vocabulary_size: Callable[[Mapping[str, Any]], int]  # of those settings
    # A prefix of an oversize file still featurizes (audio is capped in time anyway),
    # so it is read up to the size limit instead of becoming a dead letter.
    reads_prefix: bool = False


MODALITIES: Mapping[str, Modality] = {
    "image": Modality(
        featurize_image,
        ("grid", "threshold"),
        lambda settings: image_vocabulary_size(settings["grid"]),
    ),
    "audio": Modality(
        featurize_audio,
        ("mels", "frames", "threshold_db", "max_seconds"),
        lambda settings: audio_vocabulary_size(settings["mels"], settings["frames"]),
        reads_prefix=True,
    ),
}
SUPPORTED = tuple(MODALITIES)


def modality_for_uri(uri: str) -> str | None:
    """The modality a file's extension names, or None for an unknown extension."""
    extension = posixpath.splitext(uri)[1].lower().lstrip(".")
    return _MODALITY_BY_EXTENSION.get(extension)


def make_featurizer(modality: str, settings: Mapping[str, Any]) -> Featurizer:
    """The featurizer of `modality`, configured exactly as at training time."""
    spec = _spec(modality)
    return functools.partial(spec.featurize, **{name: settings[name] for name in spec.settings})


def vocabulary_size(modality: str, settings: Mapping[str, Any]) -> int:
    """Number of possible feature ids: the size of the encoder's embedding table."""
    return _spec(modality).vocabulary_size(settings)


def _spec(modality: str) -> Modality:
    if modality not in MODALITIES:
        raise ValueError(
            f"modality {modality!r} is not supported yet; supported: {', '.join(SUPPORTED)}"
        )
    return MODALITIES[modality]
