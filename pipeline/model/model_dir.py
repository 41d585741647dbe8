"""The self-contained model directory: what `train` writes and `embed` reads.

    MODEL/saved_model.pb, variables/   SavedModel: `embed` and `serving_default`
    MODEL/transform_fn/, transformed_metadata/   the TFT transform graph and vocabularies
    MODEL/centroids.parquet            k-means centroids of the training embeddings
    MODEL/model.json                   modality, width, labels, featurizer settings,
                                       metrics and `model_version` (a content hash)

A joint model (modality `joint`, pipeline/model/joint.py) is one such
directory over several modalities: model.json's `parts` give each its
featurizer settings and its place in the one feature-id space, the SavedModel
has an `embed_<modality>` signature each, and one set of centroids serves all.

Everything is read and written through Beam's FileSystems (and TensorFlow's
own file system layer for the SavedModel), so gs://, s3:// and hdfs:// model
directories work wherever Beam supports them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import posixpath
from typing import Any

from apache_beam.io.filesystems import FileSystems

from embedbeam.pipeline.model.joint import JOINT, signature_of
from embedbeam.transforms.encode_embeddings import EMBED_SIGNATURE
from embedbeam.transforms.table.files import list_files, write_bytes
from embedbeam.transforms.table.layout import CENTROIDS_FILE

MODEL_JSON = "model.json"
CENTROIDS = CENTROIDS_FILE  # the same schema and name as a table's
FORMAT_VERSION = 1


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """The contents of model.json."""

    modality: str
    embedding_dim: int
    vocabulary_size: int
    labels: list[str]
    featurizer: dict[str, Any]
    num_clusters: int
    metrics: dict[str, Any]
    training: dict[str, Any]
    model_version: str = ""
    format_version: int = FORMAT_VERSION
    # A joint model's modalities: {modality: {"featurizer": settings, "id_offset": first
    # id in the joint space, "vocabulary_size": its ids}}; empty for a single modality.
    parts: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class ModalityModel:
    """What embeds one modality: the model as that modality sees it (its featurizer
    settings, the model's width, version, centroids) and the signature to call."""

    info: ModelInfo
    signature: str


def modality_models(info: ModelInfo) -> dict[str, ModalityModel]:
    """The modalities a model directory embeds: its one modality, or each of a joint
    model's, all with the joint model's width, version and centroids."""
    if info.modality != JOINT:
        return {info.modality: ModalityModel(info, EMBED_SIGNATURE)}
    return {
        modality: ModalityModel(
            dataclasses.replace(info, modality=modality, featurizer=part["featurizer"], parts={}),
            signature_of(modality),
        )
        for modality, part in info.parts.items()
    }


def read_model_info(model_dir: str) -> ModelInfo:
    """model.json of `model_dir`; ValueError with a clear message if it is not a model."""
    path = posixpath.join(model_dir, MODEL_JSON)
    if not FileSystems.exists(path):
        raise ValueError(f"{model_dir} is not an embedbeam model directory (no {MODEL_JSON})")
    with FileSystems.open(path) as handle:
        fields = json.load(handle)
    known = {field.name for field in dataclasses.fields(ModelInfo)}
    return ModelInfo(**{key: value for key, value in fields.items() if key in known})


def write_model_info(model_dir: str, info: ModelInfo) -> None:
    write_bytes(
        posixpath.join(model_dir, MODEL_JSON),
        json.dumps(dataclasses.asdict(info), indent=2, sort_keys=True).encode("utf-8"),
    )


def content_hash(model_dir: str) -> str:
    """sha256 over every file's relative path and bytes, model.json excluded."""
    root = model_dir.rstrip("/")
    paths = [path for path in list_files(root) if posixpath.basename(path) != MODEL_JSON]
    digest = hashlib.sha256()
    for path in paths:
        digest.update(posixpath.relpath(path, root).encode("utf-8") + b"\0")
        with FileSystems.open(path) as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()[:16]
