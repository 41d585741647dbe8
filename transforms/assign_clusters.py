"""AssignClusters: each embedding -> its nearest centroid (Euclidean) and the distance.

The model's centroids are loaded from the model directory in `setup()` rather
than passed as a side input, so the stage runs unchanged on runners without
side input support (DaskRunner) and on every worker of a distributed one.
Centroids fitted in this run (`--recluster`, transforms/recluster.py) exist
only as a PCollection; they come in as a singleton side input, the one place
the embed job needs side inputs. A batch is assigned at once (numpy over the
batch); the rows of the table leave here, one element per input.
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

    `centroids` is a loader (the model's centroids, read once per worker) or a
    PCollection holding one [k, d] array (centroids fitted in this run).
    """

    def __init__(
        self, centroids: Callable[[], np.ndarray] | beam.PCollection, model_version: str
    ) -> None:
        super().__init__()
        self._centroids = centroids
        self._model_version = model_version

    def expand(self, embedded: beam.PCollection[EmbeddedBatch]) -> beam.PCollection[EmbeddingRow]:
        if isinstance(self._centroids, beam.PCollection):
            return embedded | "AssignNearestFittedCentroid" >> beam.ParDo(
                _AssignNearestCentroid(None, self._model_version),
                beam.pvalue.AsSingleton(self._centroids),
            )
        return embedded | "AssignNearestCentroid" >> beam.ParDo(
            _AssignNearestCentroid(self._centroids, self._model_version)
        )


class _AssignNearestCentroid(beam.DoFn):
    def __init__(self, load_centroids: Callable[[], np.ndarray] | None, model_version: str) -> None:
        self._load_centroids = load_centroids
        self._model_version = model_version
        self._centroids: np.ndarray | None = None

    def setup(self) -> None:
        if self._load_centroids is not None:
            self._centroids = self._load_centroids()

    def process(
        self, batch: EmbeddedBatch, fitted_centroids: np.ndarray | None = None
    ) -> Iterator[EmbeddingRow]:
        centroids = self._centroids if fitted_centroids is None else fitted_centroids
        cluster_ids, distances = nearest_centroids(_float32(batch), centroids)
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
