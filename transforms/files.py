"""Moving finished files into place through Beam's FileSystems (local, gs://, s3://, ...)."""

from __future__ import annotations

import os
import posixpath
from collections.abc import Sequence

import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems


def absolute(path: str) -> str:
    """Local paths made absolute (a uri, and the id hashed from it, must not depend on
    the cwd); paths with a scheme (gs://, s3://) are left as they are."""
    return path if "://" in path else os.path.abspath(path)


def list_files(root: str) -> list[str]:
    """Every file under `root`, sorted."""
    return sorted(
        metadata.path for metadata in FileSystems.match([root.rstrip("/") + "/**"])[0].metadata_list
    )


def move_files(paths: list[str], source_root: str, target_root: str) -> list[str]:
    """Moves `paths` from under `source_root` to the same relative place under `target_root`."""
    targets = [posixpath.join(target_root, posixpath.relpath(path, source_root)) for path in paths]
    for directory in sorted({posixpath.dirname(target) for target in targets}):
        if not FileSystems.exists(directory):
            FileSystems.mkdirs(directory)
    FileSystems.rename(paths, targets)
    return targets


def read_parquet(path: str, columns: Sequence[str] | None = None) -> pa.Table:
    """One Parquet file (or some of its columns), read through FileSystems."""
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
        return pq.read_table(pa.BufferReader(handle.read()), columns=columns)
