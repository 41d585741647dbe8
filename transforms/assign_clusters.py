"""AssignClusters: each embedding -> its nearest centroid (Euclidean) and the distance.

The centroids are loaded from the model directory in `setup()` rather than
passed as a side input, so the stage runs unchanged on runners without side
input support (DaskRunner) and on every worker of a distributed one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import apache_beam as beam
import numpy as np

from transforms.records import EmbeddedInput, EmbeddingRow


def nearest_centroid(embedding: np.ndarray, centroids: np.ndarray) -> tuple[int, float]:
    """Index of the closest centroid and the Euclidean distance to it."""
    distances = np.linalg.norm(centroids - embedding, axis=1)
    nearest = int(np.argmin(distances))
    return nearest, float(distances[nearest])


class AssignClusters(beam.PTransform):
    """PCollection[EmbeddedInput] -> PCollection[EmbeddingRow]."""

    def __init__(self, load_centroids: Callable[[], np.ndarray], model_version: str) -> None:
        super().__init__()
        self._load_centroids = load_centroids
        self._model_version = model_version

    def expand(self, embedded: beam.PCollection[EmbeddedInput]) -> beam.PCollection[EmbeddingRow]:
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

    def process(self, item: EmbeddedInput) -> Iterator[EmbeddingRow]:
        cluster_id, distance = nearest_centroid(item.embedding, self._centroids)
        yield EmbeddingRow(
            modality=item.ref.modality,
            id=item.ref.id,
            uri=item.ref.uri,
            label=item.ref.label,
            embedding=item.embedding.astype(np.float32, copy=False),
            cluster_id=cluster_id,
            cluster_distance=distance,
            nnz=item.nnz,
            model_version=self._model_version,
        )
