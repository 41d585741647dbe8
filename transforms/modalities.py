"""Which modality an input is, and the featurizer that turns it into sparse features."""

from __future__ import annotations

import functools
import posixpath
from collections.abc import Callable, Mapping
from typing import Any

from transforms.sparse import SparseFeatures
from transforms.sparse.image import featurize_image, image_vocabulary_size

Featurizer = Callable[[bytes], SparseFeatures]

EXTENSIONS: Mapping[str, tuple[str, ...]] = {
    "image": ("png", "jpg", "jpeg", "gif", "bmp", "webp", "pgm"),
    "text": ("txt", "md", "jsonl"),
    "audio": ("wav", "flac", "ogg", "oga", "mp3"),
}
_MODALITY_BY_EXTENSION = {ext: modality for modality, exts in EXTENSIONS.items() for ext in exts}
SUPPORTED = ("image",)


def modality_for_uri(uri: str) -> str | None:
    """The modality a file's extension names, or None for an unknown extension."""
    extension = posixpath.splitext(uri)[1].lower().lstrip(".")
    return _MODALITY_BY_EXTENSION.get(extension)


def make_featurizer(modality: str, settings: Mapping[str, Any]) -> Featurizer:
    """The featurizer of `modality`, configured exactly as at training time."""
    if modality == "image":
        return functools.partial(
            featurize_image, grid=int(settings["grid"]), threshold=float(settings["threshold"])
        )
    raise ValueError(
        f"modality {modality!r} is not supported yet; supported: {', '.join(SUPPORTED)}"
    )


def vocabulary_size(modality: str, settings: Mapping[str, Any]) -> int:
    """Number of possible feature ids: the size of the encoder's embedding table."""
    if modality == "image":
        return image_vocabulary_size(int(settings["grid"]))
    raise ValueError(
        f"modality {modality!r} is not supported yet; supported: {', '.join(SUPPORTED)}"
    )
