"""AssignClusters: each embedding -> its nearest centroid (Euclidean) and the distance.

The model's centroids are loaded from the model directory in `setup()` rather
than passed as a side input, so the stage runs unchanged on runners without
side input support (DaskRunner) and on every worker of a distributed one.
Centroids fitted in this run (`--recluster`, transforms/recluster.py) exist
only as a PCollection; they come in as a singleton side input, the one place
the embed job needs side inputs.
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


def embedding_row(item: EmbeddedInput, centroids: np.ndarray, model_version: str) -> EmbeddingRow:
    """The table row of one embedded input, assigned to its nearest centroid."""
    cluster_id, distance = nearest_centroid(item.embedding, centroids)
    return EmbeddingRow(
        modality=item.ref.modality,
        id=item.ref.id,
        uri=item.ref.uri,
        label=item.ref.label,
        embedding=item.embedding.astype(np.float32, copy=False),
        cluster_id=cluster_id,
        cluster_distance=distance,
        nnz=item.nnz,
        model_version=model_version,
    )


class AssignClusters(beam.PTransform):
    """PCollection[EmbeddedInput] -> PCollection[EmbeddingRow].

    `centroids` is a loader (the model's centroids, read once per worker) or a
    PCollection holding one [k, d] array (centroids fitted in this run).
    """

    def __init__(
        self, centroids: Callable[[], np.ndarray] | beam.PCollection, model_version: str
    ) -> None:
        super().__init__()
        self._centroids = centroids
        self._model_version = model_version

    def expand(self, embedded: beam.PCollection[EmbeddedInput]) -> beam.PCollection[EmbeddingRow]:
        if isinstance(self._centroids, beam.PCollection):
            return embedded | "AssignNearestFittedCentroid" >> beam.Map(
                embedding_row, beam.pvalue.AsSingleton(self._centroids), self._model_version
            )
        return embedded | "AssignNearestCentroid" >> beam.ParDo(
            _AssignNearestCentroid(self._centroids, self._model_version)
        )


class _AssignNearestCentroid(beam.DoFn):
    def __init__(self, load_centroids: Callable[[], np.ndarray], model_version: str) -> None:
        self._load_centroids = load_centroids
        self._model_version = model_version
        self._centroids: np.ndarray | None = None

    def setup(self) -> None:
        self._centroids = self._load_centroids()

    def process(self, item: EmbeddedInput) -> Iterator[EmbeddingRow]:
        yield embedding_row(item, self._centroids, self._model_version)
