"""AssignClusters: each embedding -> its nearest centroid (Euclidean) and the distance.

The model's centroids are loaded from the model directory in `setup()` rather
than passed as a side input, so the stage runs unchanged on runners without
side input support (DaskRunner) and on every worker of a distributed one.
A batch is assigned at once (numpy over the batch) and leaves as one Arrow
record batch of table rows, which the writer appends whole. Centroids fitted
in this run (`--recluster`) are applied with the same `nearest_centroids` to
staged files instead (transforms/assign_staged_shards.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import apache_beam as beam
import numpy as np
import pyarrow as pa

from embedbeam.transforms.common.records import EmbeddedBatch, EmbeddingRows
from embedbeam.transforms.table.layout import embeddings_schema


def nearest_centroids(
    embeddings: np.ndarray, centroids: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """For each row of `embeddings` [n, d]: index of the closest centroid, and the distance."""
    distances = np.linalg.norm(embeddings[:, None, :] - centroids[None, :, :], axis=2)
    nearest = distances.argmin(axis=1)
    return nearest, distances[np.arange(len(nearest)), nearest]


def nearest_centroid(embedding: np.ndarray, centroids: np.ndarray) -> tuple[int, float]:
    """Index of the closest centroid and the Euclidean distance to it."""
    nearest, distance = nearest_centroids(embedding[None, :], centroids)
    return int(nearest[0]), float(distance[0])


class AssignClusters(
    beam.PTransform[beam.PCollection[EmbeddedBatch], beam.PCollection[EmbeddingRows]]
):
    """PCollection[EmbeddedBatch] -> PCollection[EmbeddingRows], one per batch.

    `load_centroids` gives the model's [k, d] centroids; it runs once per worker.
    """

    def __init__(
        self, modality: str, load_centroids: Callable[[], np.ndarray], model_version: str
    ) -> None:
        super().__init__()
        self._modality = modality
        self._load_centroids = load_centroids
        self._model_version = model_version

    def expand(self, embedded: beam.PCollection[EmbeddedBatch]) -> beam.PCollection[EmbeddingRows]:
        return embedded | "AssignNearestCentroid" >> beam.ParDo(
            _AssignNearestCentroid(self._modality, self._load_centroids, self._model_version)
        )


class _AssignNearestCentroid(beam.DoFn):
    def __init__(
        self, modality: str, load_centroids: Callable[[], np.ndarray], model_version: str
    ) -> None:
        self._modality = modality
        self._load_centroids = load_centroids
        self._model_version = model_version
        self._centroids: np.ndarray | None = None

    def setup(self) -> None:
        self._centroids = self._load_centroids()

    def process(self, batch: EmbeddedBatch) -> Iterator[EmbeddingRows]:
        cluster_ids, distances = nearest_centroids(_float32(batch), self._centroids)
        records = embedding_records(batch, self._model_version, cluster_ids, distances)
        yield EmbeddingRows(self._modality, records)


def embedding_records(
    batch: EmbeddedBatch,
    model_version: str,
    cluster_ids: np.ndarray | None = None,
    distances: np.ndarray | None = None,
) -> pa.RecordBatch:
    """The table's rows of one batch; without cluster ids they stay null (--recluster
    stages rows before its centroids exist, transforms/recluster.py)."""
    embeddings = _float32(batch)
    count, dim = embeddings.shape
    columns = [
        pa.array([ref.id for ref in batch.refs], pa.string()),
        pa.array([ref.uri for ref in batch.refs], pa.string()),
        pa.array([ref.label for ref in batch.refs], pa.string()),
        pa.FixedSizeListArray.from_arrays(pa.array(embeddings.reshape(-1)), dim),
        pa.nulls(count, pa.int32()) if cluster_ids is None else pa.array(cluster_ids, pa.int32()),
        pa.nulls(count, pa.float32()) if distances is None else pa.array(distances, pa.float32()),
        pa.array(batch.nnz, pa.int32()),
        pa.array([model_version] * count, pa.string()),
    ]
    return pa.RecordBatch.from_arrays(columns, schema=embeddings_schema(dim))


def _float32(batch: EmbeddedBatch) -> np.ndarray:
    return batch.embeddings.astype(np.float32, copy=False)
