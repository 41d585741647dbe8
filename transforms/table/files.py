"""Listing, reading and writing files, and moving finished ones into place, through
Beam's FileSystems (local, gs://, s3://, ...)."""

from __future__ import annotations

import functools
import logging
import os
import posixpath
import re
import string
from collections.abc import Iterator, Sequence

import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystem import CompressionTypes, FileSystem
from apache_beam.io.filesystems import FileSystems

_LOG = logging.getLogger(__name__)

# What FileSystem.match takes for the part of a pattern before its first wildcard.
_BEFORE_WILDCARD = re.compile(r"^[^[*?]*")
# Where a gs:// glob's names are cut into key ranges: before each of these characters
# appended to the prefix before the glob's first wildcard (in code point order).
KEY_RANGE_CUTS = string.digits + string.ascii_uppercase + string.ascii_lowercase


def absolute(path: str) -> str:
    """Local paths made absolute (a uri, and the id hashed from it, must not depend on
    the cwd); paths with a scheme (gs://, s3://) are left as they are."""
    return path if "://" in path else os.path.abspath(path)


def match_paths(pattern: str) -> list[str]:
    """The paths `FileSystems.match` finds for `pattern`, in its order.

    A local wildcard pattern is matched here as Beam's FileSystem.match does it
    (walk the directory before the first wildcard, keep the paths its
    translated pattern matches) but without the two stat calls per file that
    fill FileMetadata's size and mtime, which nothing here uses (measured in
    bench/README.md, 'Why the code is this way'). Anything else goes to
    FileSystems.

    Without those stats, a name that cannot be stat'ed (a dangling symlink, a
    symlink loop) is kept where Beam would drop it without a word: it is an
    input, and reading makes it a dead letter with the reason. As in Beam,
    symlinked directories are not walked into (so a symlink loop in the tree
    cannot recurse) and a directory that cannot be listed is skipped, with a
    warning in the log.
    """
    return list(iter_paths(pattern))


def iter_paths(pattern: str) -> Iterator[str]:
    """match_paths one path at a time: a local walk, or a gs:// listing range by range
    (gcs_key_ranges), stops where the caller stops."""
    root = wildcard_root(pattern)
    ranges = gcs_key_ranges(pattern) if root is None else None
    if ranges is not None:
        for start, end in ranges:
            yield from gcs_paths_in_range(pattern, start, end)
    elif root is None:
        matched = FileSystems.match([_with_wildcard(pattern)])[0].metadata_list
        yield from (metadata.path for metadata in matched)
    else:
        yield from paths_under(pattern, root)


def wildcard_root(pattern: str) -> str | None:
    """The local folder a wildcard `pattern` is walked from (the one before its first
    wildcard); None for a pattern with a scheme or without wildcards (FileSystems)."""
    prefix = _BEFORE_WILDCARD.match(_with_wildcard(pattern)).group(0)
    if "://" in pattern or prefix == _with_wildcard(pattern):
        return None
    return posixpath.dirname(prefix)


def paths_under(pattern: str, directory: str, recursive: bool = True) -> Iterator[str]:
    """The paths under local `directory` (only those directly in it unless `recursive`)
    that the wildcard `pattern` matches, as match_paths finds them."""
    if not os.path.exists(directory):
        return
    matches = _matcher(pattern)
    for folder, folders, names in os.walk(directory, onerror=_warn_unlisted):
        if not recursive:
            folders.clear()
        yield from (
            path for path in (os.path.join(folder, name) for name in names) if matches(path)
        )


def gcs_key_ranges(pattern: str) -> list[tuple[str | None, str | None]] | None:
    """The name ranges [start, end) (None: unbounded) a gs:// wildcard `pattern` is
    listed in, so that workers list them apart: the names under the prefix before its
    first wildcard, cut before that prefix + each of KEY_RANGE_CUTS. Every name under
    the prefix is in exactly one range whatever its next character ('_', '-', 'é' or
    none): GCS orders names by their UTF-8 bytes, which is a str's code point order.
    None for other patterns: other schemes (s3://, hdfs://, ...) have no ranged
    listing in Beam's FileSystems and are listed whole by it."""
    located = _gcs_bucket_and_prefix(pattern)
    if located is None:
        return None
    cuts = [located[1] + character for character in KEY_RANGE_CUTS]
    return list(zip([None, *cuts], [*cuts, None], strict=True))


def gcs_paths_in_range(pattern: str, start: str | None, end: str | None) -> Iterator[str]:
    """The paths the gs:// wildcard `pattern` matches among the names in [start, end)
    (gcs_key_ranges), in name order: one listing of the prefix before its first
    wildcard bounded to the range, kept where Beam's translated pattern matches, as
    FileSystems.match keeps them (so the ranges together list what it lists)."""
    bucket, prefix = _gcs_bucket_and_prefix(pattern)
    matches = _matcher(pattern)
    blobs = _gcs_client().list_blobs(bucket, prefix=prefix, start_offset=start, end_offset=end)
    yield from (path for path in (f"gs://{bucket}/{blob.name}" for blob in blobs) if matches(path))


def _matcher(pattern: str):
    """The match function of Beam's regex for `pattern`, as FileSystems.match filters by."""
    return re.compile(FileSystem.translate_pattern(_with_wildcard(pattern))).match


def _gcs_bucket_and_prefix(pattern: str) -> tuple[str, str] | None:
    """(bucket, name prefix before the first wildcard) of a gs:// pattern with a wildcard
    in its object names; None for any other."""
    with_wildcard = _with_wildcard(pattern)
    before = _BEFORE_WILDCARD.match(with_wildcard).group(0)
    if not before.startswith("gs://") or before == with_wildcard:
        return None
    from apache_beam.io.gcp import gcsio

    try:
        return gcsio.parse_gcs_path(before, object_optional=True)
    except ValueError:  # a wildcard in the bucket's name
        return None


@functools.cache
def _gcs_client():
    """One google.cloud.storage client a process, made as Beam's gcsio makes its own."""
    from apache_beam.io.gcp import gcsio

    return gcsio.GcsIO().client


def _with_wildcard(pattern: str) -> str:
    return pattern + "*" if pattern.endswith(("/", "\\")) else pattern


def _warn_unlisted(error: OSError) -> None:
    _LOG.warning("cannot list %s, skipped: %s", error.filename, error.strerror or error)


def list_files(root: str) -> list[str]:
    """Every file under `root`, sorted."""
    return sorted(match_paths(root.rstrip("/") + "/**"))


def move_files(paths: list[str], source_root: str, target_root: str) -> list[str]:
    """Moves `paths` from under `source_root` to the same relative place under `target_root`."""
    targets = [posixpath.join(target_root, posixpath.relpath(path, source_root)) for path in paths]
    for directory in sorted({posixpath.dirname(target) for target in targets}):
        if not FileSystems.exists(directory):
            FileSystems.mkdirs(directory)
    FileSystems.rename(paths, targets)
    return targets


def write_bytes(path: str, data: bytes) -> None:
    """Writes `data` to `path` (replacing any file there) through FileSystems."""
    with FileSystems.create(path) as handle:
        handle.write(data)


def read_parquet(path: str, columns: Sequence[str] | None = None) -> pa.Table:
    """One Parquet file (or some of its columns), read through FileSystems."""
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
        return pq.read_table(pa.BufferReader(handle.read()), columns=columns)
