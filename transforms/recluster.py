"""Recluster: k-means fitted on this run's own embeddings, inside the pipeline.

    embedded -> SampleEmbeddings (bounded, seeded) -> FitCentroids (scikit-learn KMeans)
    embedded -> rows without cluster ids -> StageUnassignedShards (Parquet, under _staging)
             -> AssignStagedShards (centroids as a side input) -> staged shards with cluster ids
    staged shards -> SumSquaredDistances -> the fit's record for `_manifest.json`

Nothing here holds rows while the fit runs: the embedded rows are written to
staged shards as they come, and only the shards' paths wait for the centroids
(transforms/assign_staged_shards.py); measured in bench/recluster.md. The
sample is a combiner that keeps at most `sample_size` embeddings (Beam's
TopCombineFn heap; per bundle and after merging), so it does not grow with the
input either; the fit is one pass over the rows plus the assignment pass over
the shards. scikit-learn's KMeans (k-means++ init, Lloyd, n_init restarts) on
that sample is library code and, measured on full MNIST (bench/recluster.md),
lands within a fraction of a percent of KMeans on all vectors. The sample is
the rows with the smallest hash of (seed, id): unlike
`Sample.FixedSizeGlobally` (random.random) it is the same on every run and
runner, so the same inputs, K and seed give the same centroids and ids.

K larger than the distinct embeddings in the sample (that is, of the modality
when it has at most `sample_size` rows) cannot be refused at graph build, as
counts are unknown then: K is clamped to that number, a warning is logged and
the manifest records both. This is the only stage that uses side inputs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Iterable, Iterator
from typing import NamedTuple

import apache_beam as beam
import numpy as np
from sklearn.cluster import KMeans
from threadpoolctl import threadpool_limits

from embedbeam.transforms.assign_clusters import embedding_records
from embedbeam.transforms.assign_staged_shards import FIXED_POINT, AssignStagedShards
from embedbeam.transforms.common.defaults import DEFAULT_SAMPLE_SIZE
from embedbeam.transforms.common.records import EmbeddedBatch, StagedShard
from embedbeam.transforms.table.layout import DEFAULT_ROWS_PER_SHARD, embeddings_schema
from embedbeam.transforms.write_embeddings import Refit
from embedbeam.transforms.write_shards import WriteParquetShards

_LOG = logging.getLogger(__name__)

N_INIT = 10


@dataclasses.dataclass(frozen=True, eq=False)
class ClusterFit:
    """Centroids fitted on one modality's sample, and how they were fitted."""

    centroids: np.ndarray  # float32 [k, d]
    requested_k: int
    seed: int
    iterations: int
    sample_rows: int
    sample_inertia: float

    def record(self, inertia: float) -> dict:
        """What `_manifest.json` says about the refit (centroids excluded)."""
        return {
            "refit": True,
            "k_requested": self.requested_k,
            "k": len(self.centroids),
            "seed": self.seed,
            "iterations": self.iterations,
            "inertia": inertia,
            "sample_rows": self.sample_rows,
            "sample_inertia": self.sample_inertia,
        }


def sample_key(input_id: str, embedding: np.ndarray, seed: int) -> bytes:
    """Sort key of the seeded sample: a hash of (seed, id), then the vector to break ties.

    The tie-break makes the order total even if two inputs share an id.
    """
    digest = hashlib.blake2b(f"{seed}\0{input_id}".encode(), digest_size=16).digest()
    return digest + np.ascontiguousarray(embedding, np.float32).tobytes()


def keyed_for_sample(batch: EmbeddedBatch, seed: int) -> Iterator[tuple[bytes, np.ndarray]]:
    """Each embedding of the batch with its sample key."""
    for ref, embedding in zip(batch.refs, batch.embeddings, strict=True):
        yield sample_key(ref.id, embedding, seed), embedding


def bounded_sample_fn(sample_size: int) -> beam.transforms.combiners.TopCombineFn:
    """Keeps the `sample_size` (key, embedding) pairs of smallest key; never more."""
    return beam.transforms.combiners.TopCombineFn(
        sample_size, key=lambda keyed: keyed[0], reverse=True
    )


def fit_kmeans(
    sample: Iterable[tuple[bytes, np.ndarray]], k: int, seed: int, dim: int
) -> ClusterFit:
    """scikit-learn KMeans on the sample, K clamped to its distinct vectors.

    One thread: scikit-learn sums thread-local partials in lock order, so more
    threads can change the last bits of a centroid from run to run.
    """
    ordered = sorted(sample, key=lambda keyed: keyed[0])
    vectors = np.array([vector for _, vector in ordered], np.float32).reshape(-1, dim)
    clusters = min(k, len(np.unique(vectors, axis=0)))
    if clusters < k:
        _LOG.warning(
            "--recluster %d: only %d distinct embeddings to cluster, fitting k = %d",
            k,
            clusters,
            clusters,
        )
    if clusters == 0:
        return ClusterFit(np.zeros((0, dim), np.float32), k, seed, 0, 0, 0.0)
    with threadpool_limits(limits=1):
        kmeans = KMeans(n_clusters=clusters, n_init=N_INIT, random_state=seed).fit(vectors)
    return ClusterFit(
        centroids=kmeans.cluster_centers_.astype(np.float32),
        requested_k=k,
        seed=seed,
        iterations=int(kmeans.n_iter_),
        sample_rows=len(vectors),
        sample_inertia=float(kmeans.inertia_),
    )


class SumSquaredDistances(beam.CombineFn):
    """Inertia: the sum of every row's squared distance to its centroid, order-independent.

    Each staged shard brings its rows' sum as an integer in units of 2**-32
    (assign_staged_shards.squared_distance_units); integer sums do not depend on
    how a runner bundles and merges, float sums do. Not `CombineGlobally(sum)`
    over ints: Beam swaps that for an int64 sum, which could overflow.
    """

    def create_accumulator(self) -> int:
        return 0

    def add_input(self, units: int, shard: StagedShard) -> int:
        return units + shard.squared_distance_units

    def merge_accumulators(self, accumulators: Iterable[int]) -> int:
        return sum(accumulators)

    def extract_output(self, units: int) -> float:
        return units / FIXED_POINT


class Reclustered(NamedTuple):
    """Recluster's output: the staged shards, assigned with this run's centroids, and the
    one Refit (centroids and ClusterFit.record) WriteEmbeddings needs to write
    centroids.parquet and the manifest."""

    shards: beam.PCollection[StagedShard]
    refits: beam.PCollection[Refit]


class Recluster(beam.PTransform[beam.PCollection[EmbeddedBatch], Reclustered]):
    """PCollection[EmbeddedBatch] -> Reclustered (staged shards, refit).

    `unassigned_dir` and `assigned_dir` are folders of this run's staging area:
    the first for rows waiting for the fit (never committed), the second for the
    table's shards.
    """

    def __init__(
        self,
        modality: str,
        k: int,
        seed: int,
        embedding_dim: int,
        model_version: str,
        unassigned_dir: str,
        assigned_dir: str,
        sample_size: int = DEFAULT_SAMPLE_SIZE,
        rows_per_shard: int = DEFAULT_ROWS_PER_SHARD,
    ) -> None:
        super().__init__()
        self._modality = modality
        self._k = k
        self._seed = seed
        self._dim = embedding_dim
        self._model_version = model_version
        self._unassigned_dir = unassigned_dir
        self._assigned_dir = assigned_dir
        self._sample_size = sample_size
        self._rows_per_shard = rows_per_shard

    def expand(self, embedded: beam.PCollection[EmbeddedBatch]) -> Reclustered:
        seed, k, dim = self._seed, self._k, self._dim
        schema = embeddings_schema(dim)
        fit = (
            embedded
            | "KeyBySampleHash" >> beam.FlatMap(keyed_for_sample, seed)
            | "SampleEmbeddings" >> beam.CombineGlobally(bounded_sample_fn(self._sample_size))
            | "FitCentroids" >> beam.Map(fit_kmeans, k, seed, dim)
        )
        unassigned_shards = (
            embedded
            | "RowsWithoutClusters" >> beam.Map(embedding_records, self._model_version)
            | "StageUnassignedShards"
            >> WriteParquetShards(self._unassigned_dir, schema, self._rows_per_shard)
        )
        shards = unassigned_shards | "AssignStagedShards" >> AssignStagedShards(
            self._modality,
            self._assigned_dir,
            schema,
            fit | "CentroidsOfFit" >> beam.Map(lambda cluster_fit: cluster_fit.centroids),
        )
        modality = self._modality
        refit = (
            shards
            | "SumSquaredDistances" >> beam.CombineGlobally(SumSquaredDistances())
            | "RecordRefit"
            >> beam.Map(
                lambda inertia, cluster_fit: Refit(
                    modality, cluster_fit.centroids, cluster_fit.record(inertia)
                ),
                beam.pvalue.AsSingleton(fit),
            )
        )
        return Reclustered(shards, refit)
