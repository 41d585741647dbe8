"""Whole Parquet shards: written under a temporary name and renamed when complete.

A file with a `part-` name (layout.is_shard_name) is always whole, whether or
not the run that wrote it lived to commit, so `embed --resume` can reuse it.
"""

from __future__ import annotations

import posixpath
import uuid
from collections.abc import Iterable

import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from embedbeam.transforms.table.layout import SHARD_PREFIX, SHARD_SUFFIX, is_shard_name


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
    """zstd, and no dictionary for float columns (embeddings, distances): their values
    hardly repeat, so a dictionary only costs time and bytes (bench/README.md)."""
    return {
        "compression": "zstd",
        "use_dictionary": [field.name for field in schema if not _holds_floats(field.type)],
    }


def _holds_floats(field_type: pa.DataType) -> bool:
    if pa.types.is_fixed_size_list(field_type) or pa.types.is_list(field_type):
        field_type = field_type.value_type
    return pa.types.is_floating(field_type)
