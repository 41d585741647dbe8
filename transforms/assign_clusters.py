"""AssignClusters: each embedding -> its nearest centroid (Euclidean) and the distance.

The model's centroids are loaded from the model directory in `setup()` rather
than passed as a side input, so the stage runs unchanged on runners without
side input support (DaskRunner) and on every worker of a distributed one.
A batch is assigned at once (numpy over the batch); the rows of the table
leave here, one element per input. Centroids fitted in this run
(`--recluster`) are applied with the same `nearest_centroids` to staged files
instead (transforms/assign_staged_shards.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import apache_beam as beam
import numpy as np

from transforms.records import EmbeddedBatch, EmbeddingRow


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


class AssignClusters(beam.PTransform):
    """PCollection[EmbeddedBatch] -> PCollection[EmbeddingRow].

    `load_centroids` gives the model's [k, d] centroids; it runs once per worker.
    """

    def __init__(self, load_centroids: Callable[[], np.ndarray], model_version: str) -> None:
        super().__init__()
        self._load_centroids = load_centroids
        self._model_version = model_version

    def expand(self, embedded: beam.PCollection[EmbeddedBatch]) -> beam.PCollection[EmbeddingRow]:
        return embedded | "AssignNearestCentroid" >> beam.ParDo(
            _AssignNearestCentroid(self._load_centroids, self._model_version)
        )


class _AssignNearestCentroid(beam.DoFn):
    def __init__(self, load_centroids: Callable[[], np.ndarray], model_version: str) -> None:
        self._load_centroids = load_centroids
        self._model_version = model_version
        self._centroids: np.ndarray | None = None

    def setup(self) -> None:
        self._centroids = self._load_centroids()

    def process(self, batch: EmbeddedBatch) -> Iterator[EmbeddingRow]:
        cluster_ids, distances = nearest_centroids(_float32(batch), self._centroids)
        yield from embedding_rows(batch, self._model_version, cluster_ids, distances)


def embedding_rows(
    batch: EmbeddedBatch,
    model_version: str,
    cluster_ids: np.ndarray | None = None,
    distances: np.ndarray | None = None,
) -> Iterator[EmbeddingRow]:
    """The table's rows of one batch; without cluster ids they stay None (--recluster
    stages rows before its centroids exist, transforms/recluster.py)."""
    unassigned = [None] * len(batch.refs)
    for ref, embedding, cluster_id, distance, nnz in zip(
        batch.refs,
        _float32(batch),
        unassigned if cluster_ids is None else cluster_ids.tolist(),
        unassigned if distances is None else distances.tolist(),
        batch.nnz.tolist(),
        strict=True,
    ):
        yield EmbeddingRow(
            modality=ref.modality,
            id=ref.id,
            uri=ref.uri,
            label=ref.label,
            embedding=embedding,
            cluster_id=cluster_id,
            cluster_distance=distance,
            nnz=nnz,
            model_version=model_version,
        )


def _float32(batch: EmbeddedBatch) -> np.ndarray:
    return batch.embeddings.astype(np.float32, copy=False)
