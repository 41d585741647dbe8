"""ListInputBatches: a file glob or a manifest -> batches of `InputRef`s, nothing read yet.

Listing is separate from reading so the job can count every input it has seen
before anything can fail: inputs seen = rows written + dead letters. Refs that
listing already knows are broken (a bad .jsonl line, a manifest row with an id
used before) carry a `problem`; reading dead-letters them with stage `list`.
"""

from __future__ import annotations

import dataclasses
import io
import itertools
import json
import math
import os
import posixpath
from collections.abc import Iterator, Mapping
from typing import Any, BinaryIO

import apache_beam as beam
import pyarrow as pa
import pyarrow.csv
import pyarrow.parquet as pq
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

import embedbeam.transforms.common.coders  # noqa: F401 - InputRef's coder, for list[InputRef]
from embedbeam.transforms.common.records import InputRef, id_for_uri
from embedbeam.transforms.sparse import InvalidInput
from embedbeam.transforms.sparse.modalities import modality_for_uri
from embedbeam.transforms.sparse.read_bytes import open_regular_file, read_file
from embedbeam.transforms.table.files import absolute, match_paths

MANIFEST_FORMATS = ("csv", "jsonl", "json", "parquet")
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


class ListInputBatches(beam.PTransform[beam.pvalue.PBegin, beam.PCollection[list[InputRef]]]):
    """PBegin -> every input of `source` as InputRefs, in lists of `batch_size` (the last
    one shorter), in listing order, not yet spread over workers.

    Listing in batches means Beam handles each batch, not each input, from the
    first step on: a step per element costs about as much as reading a small file.
    """

    def __init__(self, source: InputSource, batch_size: int) -> None:
        super().__init__()
        self._source = source
        self._batch_size = batch_size

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection[list[InputRef]]:
        return (
            pbegin
            | "Source" >> beam.Create([self._source])
            | "ListRefBatches"
            >> beam.FlatMap(_batches_of_refs, self._batch_size).with_output_types(list[InputRef])
        )


def list_refs(source: InputSource) -> Iterator[InputRef]:
    """Every input of `source`: one per matched file (per line of a .jsonl file), or per
    manifest row."""
    if source.manifest is not None:
        yield from refs_from_manifest(source.manifest)
        return
    for path in match_paths(source.pattern):
        yield from expand_jsonl(ref_from_path(path, source.labels_from_folder), source.text_field)


def _batches_of_refs(source: InputSource, batch_size: int) -> Iterator[list[InputRef]]:
    refs = list_refs(source)
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
    """Every row of a manifest as an InputRef, in manifest order.

    Ids are unique in the output: the first row of an id wins; a later row
    with the same id is still an input, marked `duplicate_id`, so it ends as a
    dead letter and inputs seen = rows + dead letters still holds. A row that
    cannot be parsed, or whose `id` is not a string or integer, is marked too.
    """
    first_row_of: dict[str, int] = {}
    for number, row in read_manifest_rows(manifest):
        if isinstance(row, ManifestRowError):
            uri = f"{absolute(manifest)}#row={number}"
            yield InputRef(
                id=id_for_uri(uri), uri=uri, label=None, modality=None,
                problem=("bad_manifest_row", row.message),
            )  # fmt: skip
            continue
        ref = ref_from_manifest_row(row, manifest)
        if ref.problem is not None:
            yield ref
        elif ref.id in first_row_of:
            yield dataclasses.replace(
                ref,
                inline=None,
                problem=(
                    "duplicate_id",
                    f"id {ref.id!r} is already used by row {first_row_of[ref.id]} of the "
                    "manifest; the first row of an id wins",
                ),
            )
        else:
            first_row_of[ref.id] = number
            yield ref


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


def read_manifest_rows(path: str) -> Iterator[tuple[int, dict[str, Any] | ManifestRowError]]:
    """(row number, row) of a CSV, JSONL or Parquet manifest, streamed in order.

    Row numbers count from 1 over data rows (JSONL: over lines). A row that
    cannot be parsed comes as a ManifestRowError instead of failing the file.
    """
    with open_manifest(path) as handle:
        yield from _manifest_rows(path, handle)


def manifest_columns(path: str) -> list[str]:
    """Column names of a manifest (of its first rows); used to fail fast on one without `uri`."""
    with open_manifest(path) as handle:
        if manifest_format(path) in ("jsonl", "json"):
            names: dict[str, None] = {}
            for _, row in itertools.islice(_jsonl_rows(handle), _BATCH_ROWS):
                names.update(dict.fromkeys(row if isinstance(row, dict) else ()))
            return list(names)
        first = next(_manifest_batches(path, handle, []), None)
    return [] if first is None else first.schema.names


def manifest_row_count(path: str) -> int:
    """Rows of a manifest (each one input), for progress with an ETA."""
    with open_manifest(path) as handle:
        if manifest_format(path) == "parquet":
            return pq.ParquetFile(handle).metadata.num_rows
        return sum(1 for _ in _manifest_rows(path, handle))


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


def _manifest_rows(path: str, handle) -> Iterator[tuple[int, dict[str, Any] | ManifestRowError]]:
    if manifest_format(path) in ("jsonl", "json"):
        yield from _jsonl_rows(handle)
        return
    number = 0
    invalid: list[Any] = []
    for batch in _manifest_batches(path, handle, invalid):
        for row in batch.to_pylist():
            number += 1
            yield number, row
        for bad in invalid:  # CSV rows with the wrong number of fields, skipped by the parser
            number += 1
            yield (
                number,
                ManifestRowError(
                    f"line {bad.number}: {bad.actual_columns} fields, expected {bad.expected_columns}"
                ),
            )
        invalid.clear()


def _jsonl_rows(handle) -> Iterator[tuple[int, dict[str, Any] | ManifestRowError]]:
    """One JSON object a line, parsed line by line so one bad line costs only itself."""
    for number, line in enumerate(io.TextIOWrapper(handle, "utf-8", errors="replace"), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as error:
            yield number, ManifestRowError(f"line {number}: {error}")
            continue
        if not isinstance(row, dict):
            yield (
                number,
                ManifestRowError(f"line {number}: a {type(row).__name__}, not a JSON object"),
            )
            continue
        yield number, row


def _manifest_batches(path: str, handle, invalid: list) -> Iterator[pa.RecordBatch]:
    """Parquet or CSV record batches; CSV rows the parser rejects are appended to `invalid`."""
    if manifest_format(path) == "parquet":
        yield from pq.ParquetFile(handle).iter_batches(batch_size=_BATCH_ROWS)
        return

    def skip_and_keep(row) -> str:
        invalid.append(row)
        return "skip"

    parse = pyarrow.csv.ParseOptions(invalid_row_handler=skip_and_keep)
    # Every column as a string: ids such as "007" must keep their zeros.
    names = pyarrow.csv.open_csv(handle, parse_options=parse).schema.names
    handle.seek(0)
    invalid.clear()  # the header probe may have met (and will meet again) bad rows
    as_strings = pyarrow.csv.ConvertOptions(column_types={name: pa.string() for name in names})
    yield from pyarrow.csv.open_csv(handle, convert_options=as_strings, parse_options=parse)


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
