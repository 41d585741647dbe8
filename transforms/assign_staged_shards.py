"""AssignStagedShards: staged shards without cluster ids -> the same rows with them, as files.

`--recluster` cannot assign a row before its centroids are fitted, and the fit
needs every row's embedding first. Holding the rows until then costs memory
that grows with the input (the DirectRunner keeps them in memory), so the rows
are staged as Parquet shards without cluster ids while the fit runs, and only
the shards' paths wait for the centroids (a singleton side input). Each shard
is then read in record batches, assigned with `nearest_centroids` (the math of
AssignClusters) and written again whole as a new shard, batch by batch: memory
is one batch, whatever the number of rows. The unassigned shards stay under
`_staging`, which the commit deletes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from embedbeam.transforms.assign_clusters import nearest_centroids
from embedbeam.transforms.common.records import StagedShard
from embedbeam.transforms.table.layout import vectors
from embedbeam.transforms.table.shards import write_shard_batches

FIXED_POINT = 2**32  # units of the inertia sum, see recluster.SumSquaredDistances
# Rows assigned at once: nearest_centroids holds a [rows, k, d] array of differences.
ASSIGN_BATCH_ROWS = 1024


def squared_distance_units(distances: np.ndarray) -> int:
    """Sum of the squared distances in units of 2**-32, as an exact Python integer.

    Rounded row by row, so the total does not depend on which shard a row is in.
    """
    return sum(round(distance**2 * FIXED_POINT) for distance in distances.tolist())


def with_clusters(
    batch: pa.RecordBatch, cluster_ids: np.ndarray, distances: np.ndarray, schema: pa.Schema
) -> pa.RecordBatch:
    """`batch` with its cluster_id and cluster_distance columns replaced."""
    columns = dict(zip(batch.schema.names, batch.columns, strict=True))
    columns["cluster_id"] = pa.array(cluster_ids, pa.int32())
    columns["cluster_distance"] = pa.array(distances, pa.float32())
    return pa.RecordBatch.from_arrays([columns[name] for name in schema.names], schema=schema)


class AssignStagedShards(beam.PTransform[beam.PCollection[str], beam.PCollection[StagedShard]]):
    """PCollection[str] (unassigned shard paths) -> PCollection[StagedShard] (assigned ones).

    `centroids` is a PCollection holding one float32 [k, d] array.
    """

    def __init__(
        self, modality: str, directory: str, schema: pa.Schema, centroids: beam.PCollection
    ) -> None:
        super().__init__()
        self._modality = modality
        self._directory = directory
        self._schema = schema
        self._centroids = centroids

    def expand(self, paths: beam.PCollection[str]) -> beam.PCollection[StagedShard]:
        return paths | "AssignNearestFittedCentroid" >> beam.ParDo(
            _AssignShardFn(self._modality, self._directory, self._schema),
            beam.pvalue.AsSingleton(self._centroids),
        )


class _AssignShardFn(beam.DoFn):
    def __init__(self, modality: str, directory: str, schema: pa.Schema) -> None:
        self._modality = modality
        self._directory = directory
        self._schema = schema

    def process(self, path: str, centroids: np.ndarray) -> Iterator[StagedShard]:
        assigned: list[tuple[np.ndarray, np.ndarray]] = []  # (cluster ids, distances) per batch

        def assign(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
            for batch in batches:
                cluster_ids, distances = nearest_centroids(
                    vectors(batch.column("embedding")), centroids
                )
                assigned.append((cluster_ids, distances))
                yield with_clusters(batch, cluster_ids, distances, self._schema)

        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
            batches = pq.ParquetFile(handle).iter_batches(batch_size=ASSIGN_BATCH_ROWS)
            written = write_shard_batches(self._directory, self._schema, assign(batches))
        cluster_ids = np.concatenate([ids for ids, _ in assigned] or [np.zeros(0, np.int64)])
        distances = np.concatenate([d for _, d in assigned] or [np.zeros(0, np.float32)])
        yield StagedShard(
            modality=self._modality,
            path=written,
            cluster_sizes=tuple(np.bincount(cluster_ids, minlength=len(centroids)).tolist()),
            squared_distance_units=squared_distance_units(distances),
        )
