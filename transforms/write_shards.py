"""WriteParquetShards: Arrow record batches -> whole Parquet shards, written as they fill up.

Beam's WriteToParquet finalizes (names) its files only after the last bundle,
and the DirectRunner hands a whole stage's input to one bundle, so a killed
run leaves no finished file at all. Here each shard of `rows_per_shard`
rows is written under a temporary name and renamed to `part-<uuid>.parquet`
when complete: a file with a `part-` name is always whole, whether or not the
run that wrote it lived to commit (`embed --resume` reuses such shards).

A shard written by a bundle that later failed and was retried is never
reported downstream (its bundle's output is dropped); the commit moves only
reported shards, and `--resume` drops shards whose ids overlap others.
"""

from __future__ import annotations

from collections.abc import Iterator

import apache_beam as beam
import pyarrow as pa
from apache_beam.metrics import Metrics
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.windowed_value import WindowedValue

from embedbeam.transforms.common.metrics import METRICS_NAMESPACE
from embedbeam.transforms.table.layout import DEFAULT_ROWS_PER_SHARD
from embedbeam.transforms.table.shards import write_shard_batches


class WriteParquetShards(beam.PTransform[beam.PCollection[pa.RecordBatch], beam.PCollection[str]]):
    """PCollection[pa.RecordBatch] -> PCollection[str]: the names of the complete shards written.

    Batches are appended whole: no per-row Python between the stage that made
    them and the Parquet writer.
    """

    def __init__(
        self, directory: str, schema: pa.Schema, rows_per_shard: int = DEFAULT_ROWS_PER_SHARD
    ) -> None:
        super().__init__()
        self._directory = directory
        self._schema = schema
        self._rows_per_shard = rows_per_shard

    def expand(self, batches: beam.PCollection[pa.RecordBatch]) -> beam.PCollection[str]:
        return batches | "WriteShards" >> beam.ParDo(
            _WriteShardsFn(self._directory, self._schema, self._rows_per_shard)
        )


class _WriteShardsFn(beam.DoFn):
    def __init__(self, directory: str, schema: pa.Schema, rows_per_shard: int) -> None:
        self._directory = directory
        self._schema = schema
        self._rows_per_shard = rows_per_shard
        self._shards = Metrics.counter(METRICS_NAMESPACE, "shards_written")
        self._buffer: list[pa.RecordBatch] = []
        self._buffered_rows = 0

    def start_bundle(self) -> None:
        self._buffer, self._buffered_rows = [], 0

    def process(self, batch: pa.RecordBatch) -> Iterator[str]:
        while batch.num_rows:
            room = self._rows_per_shard - self._buffered_rows
            self._buffer.append(batch.slice(0, room))  # slices share the batch's memory
            self._buffered_rows += min(room, batch.num_rows)
            batch = batch.slice(room)
            if self._buffered_rows == self._rows_per_shard:
                yield self._flush()

    def finish_bundle(self) -> Iterator[WindowedValue]:
        if self._buffer:
            window = GlobalWindow()
            yield WindowedValue(self._flush(), window.max_timestamp(), [window])

    def _flush(self) -> str:
        # One table, not batch after batch: a shard's row groups are not the size of its batches.
        shard = pa.Table.from_batches(self._buffer, schema=self._schema)
        path = write_shard_batches(self._directory, self._schema, [shard])
        self._buffer, self._buffered_rows = [], 0
        self._shards.inc()
        return path
