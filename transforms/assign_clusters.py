"""AssignClusters: each embedding -> its nearest centroid (Euclidean) and the distance.

The centroids are loaded from the model directory in `setup()` rather than
passed as a side input, so the stage runs unchanged on runners without side
input support (DaskRunner) and on every worker of a distributed one. A batch
is assigned at once (numpy over the batch); the rows of the table leave here,
one element per input.
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
    """PCollection[EmbeddedBatch] -> PCollection[EmbeddingRow]."""

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
        embeddings = batch.embeddings.astype(np.float32, copy=False)
        cluster_ids, distances = nearest_centroids(embeddings, self._centroids)
        for ref, embedding, cluster_id, distance, nnz in zip(
            batch.refs,
            embeddings,
            cluster_ids.tolist(),
            distances.tolist(),
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
                model_version=self._model_version,
            )
