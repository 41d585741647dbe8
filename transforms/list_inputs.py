"""ListInputBatches: a file glob or a manifest -> batches of `InputRef`s, nothing read yet.

Listing is separate from reading so the job can count every input it has seen
before anything can fail: inputs seen = rows written + dead letters. Refs that
listing already knows are broken (a bad .jsonl line, a manifest row with an id
used before) carry a `problem`; reading dead-letters them with stage `list`.

Listing is split into parts that workers list apart (ListingPart): a local glob's
folder tree one top-level folder a part, a gs:// glob's names one key range a part
(KeyRangePart), a Parquet manifest one row group a part; a glob on another object
store (s3://, hdfs://, ...) is one part, listed by Beam's FileSystems. Manifest ids
must be unique (the first row of an id wins), which one part cannot see alone:
one pass over the manifest's ids finds the ids used more than once
(`duplicate_ids`, a side input of the parts), keeping one 8-byte hash a row,
not the ids. A CSV or JSONL manifest is cut into byte ranges at row starts
(MANIFEST_PART_BYTES a part): one scan of its rows finds where they start and
what number each has, so a part's rows are numbered, and dead-lettered, as the
whole file's are; a CSV header is read once, with the plan, and given to every part.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import itertools
import json
import math
import os
import posixpath
from collections.abc import Iterator, Mapping
from typing import Any, BinaryIO

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

import embedbeam.transforms.common.coders  # noqa: F401 - InputRef's coder, for list[InputRef]
from embedbeam.transforms.common.records import InputRef, id_for_uri
from embedbeam.transforms.sparse import InvalidInput
from embedbeam.transforms.sparse.modalities import modality_for_uri
from embedbeam.transforms.sparse.read_bytes import open_regular_file, read_file
from embedbeam.transforms.table.files import (
    absolute,
    gcs_key_ranges,
    gcs_paths_in_range,
    match_paths,
    paths_under,
    wildcard_root,
)

MANIFEST_FORMATS = ("csv", "jsonl", "json", "parquet")
# A CSV or JSONL manifest is listed in parts of about this many bytes, cut at row starts.
MANIFEST_PART_BYTES = 64 << 20
# Columns that carry the input itself, so a row needs no `uri`.
INLINE_COLUMNS = ("text", "ids")


@dataclasses.dataclass(frozen=True)
class InputSource:
    """Either a file glob (labels from parent folder names) or a manifest file.

    A .jsonl file matched by the glob holds one text document per line, in the
    field `text_field`; each line is an input of its own.
    """

    pattern: str | None = None
    manifest: str | None = None
    labels_from_folder: bool = True
    text_field: str = "text"

    def __post_init__(self) -> None:
        if (self.pattern is None) == (self.manifest is None):
            raise ValueError("give exactly one of a file pattern or a manifest")


@dataclasses.dataclass(frozen=True)
class GlobPart:
    """The paths of `pattern` under `directory` (only those directly in it unless
    `recursive`); `directory` None: all of `pattern`, listed by FileSystems."""

    pattern: str
    directory: str | None = None
    recursive: bool = True


@dataclasses.dataclass(frozen=True)
class KeyRangePart:
    """The paths of gs:// `pattern` whose object names are in [start, end) (None:
    unbounded), listed with a ranged listing of the prefix before its first wildcard
    (files.gcs_key_ranges), so that one worker does not list a whole bucket alone."""

    pattern: str
    start: str | None
    end: str | None


@dataclasses.dataclass(frozen=True)
class ManifestPart:
    """The `rows` rows of one row group of a Parquet manifest, or the rows of a CSV or
    JSONL one that start in `byte_range` (its end None: to the end of the file), whose
    columns are `header` (CSV); neither: every row of the manifest, in order. `first_row`
    is the number of its first row, from 1."""

    manifest: str
    row_group: int | None = None
    first_row: int = 1
    rows: int | None = None
    byte_range: tuple[int, int | None] | None = None
    header: tuple[str, ...] | None = None


ListingPart = GlobPart | KeyRangePart | ManifestPart


class ListInputBatches(beam.PTransform[beam.pvalue.PBegin, beam.PCollection[list[InputRef]]]):
    """PBegin -> every input of `source` as InputRefs, in lists of at most `batch_size`.

    Listing in batches means Beam handles each batch, not each input, from the
    first step on: a step per element costs about as much as reading a small file.
    With `spread`, the listing parts, then the batches, are reshuffled over the
    workers, and .jsonl files are expanded into their documents after that, by the
    worker that reads them. Without (one in-process worker: nothing to spread to),
    batches go on in listing order as they are made.
    """

    def __init__(self, source: InputSource, batch_size: int, spread: bool = False) -> None:
        super().__init__()
        self._source = source
        self._batch_size = batch_size
        self._spread = spread

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection[list[InputRef]]:
        source = pbegin | "Source" >> beam.Create([self._source])
        parts = source | "PlanListing" >> beam.FlatMap(listing_parts)
        duplicates = beam.pvalue.AsSingleton(
            source | "FindDuplicateIds" >> beam.Map(duplicate_ids_of_source)
        )
        if self._spread:
            parts = parts | "SpreadListing" >> beam.Reshuffle()
        batches = parts | "ListRefBatches" >> beam.FlatMap(
            _batches_of_part, self._source, self._batch_size, duplicates
        ).with_output_types(list[InputRef])
        if self._source.pattern is None:
            return batches | "SpreadInputBatches" >> beam.Reshuffle() if self._spread else batches
        if self._spread:
            batches = batches | "SpreadInputBatches" >> beam.Reshuffle()
        return batches | "ExpandJsonl" >> beam.FlatMap(
            _expanded_batches, self._source.text_field, self._batch_size
        ).with_output_types(list[InputRef])


def listing_parts(source: InputSource) -> list[ListingPart]:
    """The parts `source` is listed in: a Parquet manifest's row groups (from its footer);
    a CSV or JSONL manifest's byte ranges (text_manifest_parts); a local glob's files
    directly in the folder before its first wildcard, then each folder in that one
    (without walking them); a gs:// glob's key ranges, in name order; else (another
    scheme, no wildcard) the whole source as one part, listed by FileSystems."""
    if source.manifest is not None:
        if manifest_format(source.manifest) != "parquet":
            return text_manifest_parts(source.manifest)
        with open_manifest(source.manifest) as handle:
            metadata = pq.ParquetFile(handle).metadata
        sizes = [metadata.row_group(index).num_rows for index in range(metadata.num_row_groups)]
        starts = itertools.accumulate(sizes[:-1], initial=1) if sizes else ()
        return [
            ManifestPart(source.manifest, index, first, sizes[index])
            for index, first in enumerate(starts)
        ]
    key_ranges = gcs_key_ranges(source.pattern)
    if key_ranges is not None:
        return [KeyRangePart(source.pattern, start, end) for start, end in key_ranges]
    root = wildcard_root(source.pattern)
    if root is None:
        return [GlobPart(source.pattern)]
    try:
        _, folders, _ = next(os.walk(root))
    except StopIteration:  # the root does not exist or cannot be listed
        return [GlobPart(source.pattern)]
    return [
        GlobPart(source.pattern, root, recursive=False),
        *(GlobPart(source.pattern, os.path.join(root, name)) for name in sorted(folders)),
    ]


def text_manifest_parts(manifest: str) -> list[ManifestPart]:
    """A CSV or JSONL manifest in parts of about MANIFEST_PART_BYTES, each cut where a
    row starts, with the number of its first row and the CSV header.

    Where a row starts and which number it has takes reading the rows (a quoted CSV field
    may hold a newline), so the plan reads them once, with the reader the parts use, and
    parses nothing further: no JSON, no refs.
    """
    with open_manifest(manifest) as handle:
        header, start = _header_of(manifest, handle)
        parts, first = [], 1
        for offset, number, _ in _text_records(manifest, handle, (start, None), 1):
            if offset - start >= MANIFEST_PART_BYTES:
                parts.append(ManifestPart(manifest, None, first, None, (start, offset), header))
                start, first = offset, number
    return [*parts, ManifestPart(manifest, None, first, None, (start, None), header)]


def list_refs(source: InputSource) -> Iterator[InputRef]:
    """Every input of `source`, part after part: one per matched file (per line of a
    .jsonl file), or per manifest row."""
    duplicates = duplicate_ids_of_source(source)
    for part in listing_parts(source):
        for ref in refs_of_part(part, source, duplicates):
            yield from expand_jsonl(ref, source.text_field) if source.pattern else (ref,)


def refs_of_part(
    part: ListingPart, source: InputSource, duplicates: Mapping[str, int]
) -> Iterator[InputRef]:
    """The InputRefs of one listing part; .jsonl files not yet expanded."""
    if isinstance(part, ManifestPart):
        yield from refs_from_manifest_part(part, duplicates)
        return
    if isinstance(part, KeyRangePart):
        paths = gcs_paths_in_range(part.pattern, part.start, part.end)
    elif part.directory is None:
        paths = match_paths(part.pattern)
    else:
        paths = paths_under(part.pattern, part.directory, part.recursive)
    for path in paths:
        yield ref_from_path(path, source.labels_from_folder)


def _batches_of_part(
    part: ListingPart, source: InputSource, batch_size: int, duplicates: Mapping[str, int]
) -> Iterator[list[InputRef]]:
    yield from _batched(refs_of_part(part, source, duplicates), batch_size)


def _expanded_batches(
    batch: list[InputRef], text_field: str, batch_size: int
) -> Iterator[list[InputRef]]:
    """A batch with its .jsonl files expanded into their documents, in batches again."""
    if not any(ref.uri.endswith(".jsonl") for ref in batch):
        yield batch
        return
    expanded = (line for ref in batch for line in expand_jsonl(ref, text_field))
    yield from _batched(expanded, batch_size)


def _batched(refs: Iterator[InputRef], batch_size: int) -> Iterator[list[InputRef]]:
    while batch := list(itertools.islice(refs, batch_size)):
        yield batch


def ref_from_path(path: str, labels_from_folder: bool) -> InputRef:
    uri = absolute(path)
    label = posixpath.basename(posixpath.dirname(uri)) if labels_from_folder else None
    return InputRef(
        id=id_for_uri(uri), uri=uri, label=label or None, modality=modality_for_uri(uri)
    )


def expand_jsonl(ref: InputRef, text_field: str) -> Iterator[InputRef]:
    """A .jsonl file as one text input per line (`uri#<line>`); other files pass through.

    A line that is not a JSON object with a string `text_field` is still an
    input, carrying the reason it will be a dead letter; a `label` field
    overrides the folder's label. A .jsonl that cannot be read (a FIFO or a
    device by that name, a symlink loop, a file gone since it was matched) is
    one input carrying the reason, as reading would give it.
    """
    if not ref.uri.endswith(".jsonl"):
        yield ref
        return
    try:
        lines = read_file(ref.uri).decode("utf-8", errors="replace").splitlines()
    except InvalidInput as error:
        yield dataclasses.replace(ref, problem=(error.reason, str(error)))
        return
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        uri = f"{ref.uri}#{number}"
        line_ref = InputRef(id=id_for_uri(uri), uri=uri, label=ref.label, modality="text")
        try:
            record = json.loads(line)
            text = record[text_field]
            if not isinstance(text, str):
                raise TypeError(f"`{text_field}` is {type(text).__name__}, not a string")
        except (ValueError, KeyError, TypeError) as error:
            yield dataclasses.replace(
                line_ref, problem=("bad_jsonl_line", f"{type(error).__name__}: {error}")
            )
            continue
        label = _clean(record.get("label")) if isinstance(record, dict) else None
        yield dataclasses.replace(line_ref, label=label or ref.label, inline=text.encode("utf-8"))


def refs_from_manifest(manifest: str) -> Iterator[InputRef]:
    """Every row of a manifest as an InputRef, in manifest order (refs_from_manifest_part)."""
    yield from list_refs(InputSource(manifest=manifest))


def refs_from_manifest_part(
    part: ManifestPart, duplicates: Mapping[str, int]
) -> Iterator[InputRef]:
    """Every row of a manifest part as an InputRef, in manifest order.

    Ids are unique in the output: the first row of an id wins (`duplicates`: the
    first row of each id used more than once); a later row with the same id is
    still an input, marked `duplicate_id`, so it ends as a dead letter and inputs
    seen = rows + dead letters still holds. A row that cannot be parsed, or whose
    `id` is not a string or integer, is marked too.
    """
    for number, ref in _manifest_part_refs(part):
        first = duplicates.get(ref.id) if ref.problem is None else None
        if first is None or first == number:
            yield ref
            continue
        yield dataclasses.replace(
            ref,
            inline=None,
            problem=(
                "duplicate_id",
                f"id {ref.id!r} is already used by row {first} of the manifest; the first "
                "row of an id wins",
            ),
        )


def _manifest_part_refs(part: ManifestPart) -> Iterator[tuple[int, InputRef]]:
    """(row number, ref) of every row of a part, duplicates not yet marked.

    A Parquet row group that cannot be read (a corrupt page, a file cut short) does not
    fail the job: each of its rows not yet read is an input marked
    `unreadable_row_group`, since the footer says how many rows it holds, so the count
    of inputs seen still matches the manifest's.
    """
    manifest = part.manifest
    number = part.first_row - 1
    try:
        for number, row in read_manifest_rows(part):
            if isinstance(row, ManifestRowError):
                yield number, _row_problem(manifest, number, ("bad_manifest_row", row.message))
            else:
                yield number, ref_from_manifest_row(row, manifest)
    except (OSError, pa.ArrowException) as error:
        if part.rows is None:
            raise
        detail = f"row group {part.row_group} cannot be read: {type(error).__name__}: {error}"
        for unread in range(number + 1, part.first_row + part.rows):
            yield unread, _row_problem(manifest, unread, ("unreadable_row_group", detail))


def _row_problem(manifest: str, number: int, problem: tuple[str, str]) -> InputRef:
    """Row `number` of `manifest` as an input that only carries why it is a dead letter."""
    uri = f"{absolute(manifest)}#row={number}"
    return InputRef(id=id_for_uri(uri), uri=uri, label=None, modality=None, problem=problem)


def duplicate_ids_of_source(source: InputSource) -> dict[str, int]:
    """The first row of each id a manifest uses more than once (none for a glob: a path
    is listed once)."""
    return {} if source.manifest is None else duplicate_ids(source.manifest)


def duplicate_ids(manifest: str) -> dict[str, int]:
    """The first row of each id `manifest` uses more than once, in two passes that hold
    one 8-byte hash a row, not the ids: hashes seen twice, then the exact ids among the
    rows with such a hash. A CSV or JSONL manifest is read whole: the same rows, numbered
    the same, as its parts, without planning them."""
    is_parquet = manifest_format(manifest) == "parquet"
    parts = (
        listing_parts(InputSource(manifest=manifest)) if is_parquet else [ManifestPart(manifest)]
    )
    hashes = np.fromiter(
        (hash(row_id) for part in parts for _, row_id in _part_ids(part)), dtype=np.int64
    )
    values, counts = np.unique(hashes, return_counts=True)
    repeated = set(values[counts > 1].tolist())
    del hashes, values, counts
    if not repeated:
        return {}
    first_row: dict[str, int] = {}
    used_again: set[str] = set()
    for part in parts:
        for number, row_id in _part_ids(part):
            if hash(row_id) in repeated:
                if row_id in first_row:
                    used_again.add(row_id)
                else:
                    first_row[row_id] = number
    return {row_id: first_row[row_id] for row_id in used_again}


def _part_ids(part: ManifestPart) -> Iterator[tuple[int, str]]:
    """(row number, id) of the rows of a part that have a valid id. A Parquet row group
    whose `id` column has no nulls (its statistics say so) is read for that column
    alone: the ids are all this pass needs, and the other columns (inline ids or text)
    are most of a manifest's bytes."""
    if part.row_group is None or not _ids_complete(part):
        yield from _ids_of_refs(part)
        return
    try:
        with open_manifest(part.manifest) as handle:
            file = pq.ParquetFile(handle)
            column = file.read_row_group(part.row_group, columns=["id"])["id"]
    except (OSError, pa.ArrowException):  # unreadable: its rows are dead letters, not ids
        yield from _ids_of_refs(part)
        return
    ids: list[tuple[int, str | None]] = []
    for number, value in enumerate(column.to_pylist(), start=part.first_row):
        with contextlib.suppress(TypeError):  # a bad id: the row is a dead letter, not an id
            ids.append((number, _clean_id(value)))
    if any(row_id is None for _, row_id in ids):  # a blank id: the row's id is its uri's
        yield from _ids_of_refs(part)
        return
    yield from ids


def _ids_of_refs(part: ManifestPart) -> Iterator[tuple[int, str]]:
    return ((number, ref.id) for number, ref in _manifest_part_refs(part) if ref.problem is None)


def _ids_complete(part: ManifestPart) -> bool:
    """Whether the part's row group has an `id` column without nulls, by its statistics."""
    with open_manifest(part.manifest) as handle:
        metadata = pq.ParquetFile(handle).metadata
    paths = [metadata.schema.column(index).path for index in range(metadata.num_columns)]
    if "id" not in paths:
        return False
    statistics = metadata.row_group(part.row_group).column(paths.index("id")).statistics
    return statistics is not None and statistics.has_null_count and statistics.null_count == 0


def ref_from_manifest_row(row: Mapping[str, Any], manifest: str) -> InputRef:
    """A manifest row as an InputRef; relative uris are relative to the manifest.

    A row with inline `text` (a string) or `ids` (a list of strings) carries
    its input: its modality is `text` or `ids` and its uri, when it has none,
    is the manifest's with the row id as fragment. Missing values (null, NaN)
    are absent; an `id` that is not a string or an integer marks the row `bad_id`.
    """
    uri = _clean(row.get("uri")) or ""
    if uri and "://" not in uri and not posixpath.isabs(uri):
        uri = absolute(posixpath.join(posixpath.dirname(manifest), uri))
    inline, inline_modality = _inline_content(row)
    try:
        row_id = _clean_id(row.get("id"))
        problem = None
    except TypeError as error:
        row_id, problem = None, ("bad_id", str(error))
    if inline is not None and not uri:
        uri = f"{absolute(manifest)}#{row_id or id_for_uri(inline.decode('utf-8', 'replace'))}"
    return InputRef(
        id=row_id or id_for_uri(uri),
        uri=uri,
        label=_clean(row.get("label")),
        modality=_clean(row.get("modality")) or inline_modality or modality_for_uri(uri),
        inline=None if problem else inline,
        problem=problem,
    )


def _inline_content(row: Mapping[str, Any]) -> tuple[bytes | None, str | None]:
    if isinstance(row.get("text"), str):
        return row["text"].encode("utf-8"), "text"
    if isinstance(row.get("ids"), list | tuple):
        values = (_clean(value) for value in row["ids"])
        return "\n".join(value for value in values if value is not None).encode("utf-8"), "ids"
    return None, None


@dataclasses.dataclass(frozen=True)
class ManifestRowError:
    """A manifest row that could not be parsed (bad JSON, wrong number of CSV fields)."""

    message: str


def read_manifest_rows(
    part: ManifestPart,
) -> Iterator[tuple[int, dict[str, Any] | ManifestRowError]]:
    """(row number, row) of a manifest part (ManifestPart; every row of a CSV, JSONL or
    Parquet manifest for ManifestPart(path)), streamed in order.

    Row numbers count from 1 over data rows (CSV: blank lines not counted; JSONL: over
    lines), the same whichever part a row is read in. A row that cannot be parsed comes
    as a ManifestRowError instead of failing the file.
    """
    with open_manifest(part.manifest) as handle:
        yield from _manifest_rows(part, handle)


def manifest_columns(path: str) -> list[str]:
    """Column names of a manifest (of its first rows; a Parquet one's from its footer, no
    row read); used to fail fast on one without `uri`."""
    with open_manifest(path) as handle:
        if manifest_format(path) == "parquet":
            return pq.ParquetFile(handle).schema_arrow.names
        if manifest_format(path) == "csv":
            return list(_header_of(path, handle)[0])
        names: dict[str, None] = {}
        for _, row in itertools.islice(_manifest_rows(ManifestPart(path), handle), _BATCH_ROWS):
            names.update(dict.fromkeys(row if isinstance(row, dict) else ()))
        return list(names)


def manifest_row_count(path: str, at_most: int | None = None) -> int | None:
    """Rows of a manifest (each one input), for progress with an ETA: a Parquet one's
    from its footer; a CSV or JSONL one's by reading it, up to `at_most` rows (None if it
    has more)."""
    with open_manifest(path) as handle:
        if manifest_format(path) == "parquet":
            return pq.ParquetFile(handle).metadata.num_rows
        return _count_at_most(_manifest_rows(ManifestPart(path), handle), at_most)


def _count_at_most(items: Iterator[Any], at_most: int | None) -> int | None:
    count = sum(1 for _ in itertools.islice(items, None if at_most is None else at_most + 1))
    return None if at_most is not None and count > at_most else count


def open_manifest(path: str) -> BinaryIO:
    """The manifest at `path`, open for reading; InvalidInput when a local one is not a
    regular file (a FIFO would block the open, a device never end)."""
    if "://" in path:
        return FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)
    descriptor, _ = open_regular_file(path)
    return os.fdopen(descriptor, "rb")


def manifest_format(path: str) -> str:
    extension = posixpath.splitext(path)[1].lower().lstrip(".")
    if extension not in MANIFEST_FORMATS:
        raise ValueError(f"manifest {path} must end in one of .{', .'.join(MANIFEST_FORMATS)}")
    return extension


_BATCH_ROWS = 65536


def _manifest_rows(
    part: ManifestPart, handle: BinaryIO
) -> Iterator[tuple[int, dict[str, Any] | ManifestRowError]]:
    path = part.manifest
    if manifest_format(path) == "parquet":
        number = part.first_row - 1
        groups = None if part.row_group is None else [part.row_group]
        for batch in pq.ParquetFile(handle).iter_batches(batch_size=_BATCH_ROWS, row_groups=groups):
            for row in batch.to_pylist():
                number += 1
                yield number, row
        return
    header, byte_range = part.header, part.byte_range
    if byte_range is None:  # the whole file: its header first
        header, start = _header_of(path, handle)
        byte_range = (start, None)
    for _, number, record in _text_records(path, handle, byte_range, part.first_row):
        if manifest_format(path) == "csv":
            yield number, _csv_row(record, header)
        else:
            yield number, _jsonl_row(record, number)


def _text_records(
    path: str, handle: BinaryIO, byte_range: tuple[int, int | None], first_row: int
) -> Iterator[tuple[int, int, Any]]:
    """(byte offset, row number, raw row) of the rows of a CSV or JSONL manifest that start
    in `byte_range`, the first numbered `first_row`: a CSV row's fields (or a
    ManifestRowError), blank lines skipped and not counted; a JSONL row's line, blank
    lines skipped but counted. A row is read to its end even past the range's."""
    start, end = byte_range
    position = start

    def lines() -> Iterator[bytes]:
        nonlocal position
        handle.seek(start)
        while end is None or position < end:
            line = handle.readline()
            if not line:
                return
            position += len(line)
            yield line

    if manifest_format(path) in ("jsonl", "json"):
        for number, line in enumerate(lines(), start=first_row):
            if line.strip():
                yield position - len(line), number, line
        return
    # A row may span lines (a quoted field with a newline): csv reads as many as it needs.
    reader = csv.reader(line.decode("utf-8", errors="replace") for line in lines())
    number = first_row
    while True:
        offset = position
        try:
            fields: list[str] | ManifestRowError = next(reader)
        except StopIteration:
            return
        except csv.Error as error:  # a NUL byte, a field over csv's size limit
            fields = ManifestRowError(f"row {number}: {error}")
        if fields == []:  # a blank line
            continue
        yield offset, number, fields
        number += 1


def _header_of(path: str, handle: BinaryIO) -> tuple[tuple[str, ...] | None, int]:
    """A CSV manifest's column names (its first row, a UTF-8 byte order mark dropped) and
    the byte offset after them; (None, 0) for JSONL, which has no header."""
    if manifest_format(path) != "csv":
        return None, 0
    for _, _, fields in _text_records(path, handle, (0, None), 1):
        if isinstance(fields, ManifestRowError):
            raise ValueError(f"manifest {path}: its header does not parse: {fields.message}")
        return tuple([fields[0].removeprefix("\ufeff"), *fields[1:]]), handle.tell()
    return (), handle.tell()


def _csv_row(fields: list[str] | ManifestRowError, header: tuple[str, ...]) -> Any:
    """A CSV row's fields as a dict keyed by the header, every value a string (ids such
    as "007" keep their zeros); a ManifestRowError when the count of fields is wrong."""
    if isinstance(fields, ManifestRowError):
        return fields
    if len(fields) != len(header):
        return ManifestRowError(f"{len(fields)} fields, expected {len(header)}")
    return dict(zip(header, fields, strict=True))


def _jsonl_row(line: bytes, number: int) -> dict[str, Any] | ManifestRowError:
    """One JSON object a line, parsed line by line so one bad line costs only itself."""
    try:
        row = json.loads(line.decode("utf-8", errors="replace"))
    except ValueError as error:
        return ManifestRowError(f"line {number}: {error}")
    if not isinstance(row, dict):
        return ManifestRowError(f"line {number}: a {type(row).__name__}, not a JSON object")
    return row


def _clean_id(value: Any) -> str | None:
    """A manifest id as a string: strings and integers are ids; null and NaN are none."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # an integer id column with gaps is float in pandas
    if isinstance(value, bool) or not isinstance(value, str | int | float | None):
        raise TypeError(f"id {value!r} is a {type(value).__name__}, not a string or integer")
    if isinstance(value, float) and not math.isnan(value):
        raise TypeError(f"id {value!r} is not an integer")
    return _clean(value)


def _clean(value: Any) -> str | None:
    """A manifest value as a stripped string; null, NaN and blank are None."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value).strip()
    return text or None
