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

import posixpath
import uuid
from collections.abc import Iterable, Iterator

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.windowed_value import WindowedValue

SHARD_PREFIX = "part-"
SHARD_SUFFIX = ".parquet"
DEFAULT_ROWS_PER_SHARD = 10_000


def is_shard_name(path: str) -> bool:
    """True for a complete shard's file name (a temporary one never matches)."""
    name = posixpath.basename(path)
    return name.startswith(SHARD_PREFIX) and name.endswith(SHARD_SUFFIX)


def complete_shards(pattern: str) -> list[str]:
    """The complete shards among the files `pattern` matches, sorted (none if nothing matches)."""
    matched = FileSystems.match([pattern])[0].metadata_list
    return sorted(metadata.path for metadata in matched if is_shard_name(metadata.path))


def write_shard_batches(
    directory: str, schema: pa.Schema, batches: Iterable[pa.RecordBatch | pa.Table]
) -> str:
    """Streams `batches` into one Parquet file under a temporary name, then renames it whole.

    Only one batch is in memory at a time, so a shard can be rewritten batch by batch.
    """
    name = f"{SHARD_PREFIX}{uuid.uuid4().hex}{SHARD_SUFFIX}"
    final = posixpath.join(directory, name)
    temporary = posixpath.join(directory, f".{name}.inprogress")
    with (
        FileSystems.create(temporary) as handle,
        pq.ParquetWriter(handle, schema, **parquet_options(schema)) as writer,
    ):
        for batch in batches:
            writer.write(batch)
    FileSystems.rename([temporary], [final])
    return final


def parquet_options(schema: pa.Schema) -> dict:
    """zstd, and no dictionary for float columns (embeddings, distances).

    Their values hardly repeat: pyarrow builds a dictionary, finds it too big
    and falls back page after page. 100k MNIST rows: 5.02 -> 4.37 MB, 64 -> 36 ms
    to write. Byte-stream-split on top saved 1.6% more, too little for readers
    that lack it (Spark before 3.2) (bench/README.md, sixth round).
    """
    return {
        "compression": "zstd",
        "use_dictionary": [field.name for field in schema if not _holds_floats(field.type)],
    }


def _holds_floats(field_type: pa.DataType) -> bool:
    if pa.types.is_fixed_size_list(field_type) or pa.types.is_list(field_type):
        field_type = field_type.value_type
    return pa.types.is_floating(field_type)


class WriteParquetShards(beam.PTransform):
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
        self._shards = Metrics.counter("embedbeam", "shards_written")
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
