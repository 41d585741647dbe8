"""ListInputs: a file glob or a manifest -> one `InputRef` per input, nothing read yet.

Listing is separate from reading so the job can count every input it has seen
before anything can fail: inputs seen = rows written + dead letters.
"""

from __future__ import annotations

import dataclasses
import json
import posixpath
from collections.abc import Iterator, Mapping
from typing import Any

import apache_beam as beam
import pyarrow as pa
import pyarrow.csv
import pyarrow.json
import pyarrow.parquet as pq
from apache_beam.io import fileio
from apache_beam.io.filesystem import CompressionTypes, FileMetadata
from apache_beam.io.filesystems import FileSystems

from transforms.files import absolute
from transforms.modalities import modality_for_uri
from transforms.records import InputRef, id_for_uri

MANIFEST_FORMATS = ("csv", "jsonl", "json", "parquet")
MANIFEST_COLUMNS = ("uri", "id", "label", "modality", "text", "ids")
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


class ListInputs(beam.PTransform):
    """PBegin -> PCollection[InputRef], reshuffled so reading spreads over workers."""

    def __init__(self, source: InputSource) -> None:
        super().__init__()
        self._source = source

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection[InputRef]:
        return _list_refs(pbegin, self._source) | "SpreadInputs" >> beam.Reshuffle()


class ListInputBatches(beam.PTransform):
    """PBegin -> PCollection[list[InputRef]]: the inputs in batches, reshuffled as batches.

    A reshuffle costs about as much per element as reading a small file, so
    spreading batches rather than single inputs over the workers saves that
    cost on every input. Batches hold `batch_size` refs (a worker's last one
    fewer): a fixed size, since before the reshuffle there is no downstream
    work whose cost an adaptive size could follow.
    """

    def __init__(self, source: InputSource, batch_size: int) -> None:
        super().__init__()
        self._source = source
        self._batch_size = batch_size

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection[list[InputRef]]:
        return (
            _list_refs(pbegin, self._source)
            | "BatchInputs"
            >> beam.BatchElements(min_batch_size=self._batch_size, max_batch_size=self._batch_size)
            | "SpreadInputBatches" >> beam.Reshuffle()
        )


def _list_refs(pbegin: beam.pvalue.PBegin, source: InputSource) -> beam.PCollection[InputRef]:
    if source.pattern is not None:
        return (
            pbegin
            | "MatchInputFiles" >> fileio.MatchFiles(source.pattern)
            | "RefFromFile"
            >> beam.Map(ref_from_file_metadata, labels_from_folder=source.labels_from_folder)
            | "OneRefPerJsonlLine" >> beam.FlatMap(expand_jsonl, text_field=source.text_field)
        )
    return (
        pbegin
        | "CreateManifestPath" >> beam.Create([source.manifest])
        | "ReadManifestRows" >> beam.FlatMap(read_manifest_rows)
        | "RefFromManifestRow" >> beam.Map(ref_from_manifest_row, manifest=source.manifest)
    )


def ref_from_file_metadata(metadata: FileMetadata, labels_from_folder: bool) -> InputRef:
    uri = absolute(metadata.path)
    label = posixpath.basename(posixpath.dirname(uri)) if labels_from_folder else None
    return InputRef(
        id=id_for_uri(uri), uri=uri, label=label or None, modality=modality_for_uri(uri)
    )


def expand_jsonl(ref: InputRef, text_field: str) -> Iterator[InputRef]:
    """A .jsonl file as one text input per line (`uri#<line>`); other files pass through.

    A line that is not a JSON object with a string `text_field` is still an
    input, carrying the reason it will be a dead letter; a `label` field
    overrides the folder's label.
    """
    if not ref.uri.endswith(".jsonl"):
        yield ref
        return
    try:
        with FileSystems.open(ref.uri, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
            lines = handle.read().decode("utf-8", errors="replace").splitlines()
    except OSError as error:
        yield dataclasses.replace(
            ref, problem=("unreadable_file", f"{type(error).__name__}: {error}")
        )
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


def ref_from_manifest_row(row: Mapping[str, Any], manifest: str) -> InputRef:
    """A manifest row as an InputRef; relative uris are relative to the manifest.

    A row with inline `text` (a string) or `ids` (a list of strings) carries
    its input: its modality is `text` or `ids` and its uri, when it has none,
    is the manifest's with the row id as fragment.
    """
    uri = _clean(row.get("uri")) or ""
    if uri and "://" not in uri and not posixpath.isabs(uri):
        uri = absolute(posixpath.join(posixpath.dirname(manifest), uri))
    inline, inline_modality = _inline_content(row)
    row_id = _clean(row.get("id"))
    if inline is not None and not uri:
        uri = f"{absolute(manifest)}#{row_id or id_for_uri(inline.decode('utf-8', 'replace'))}"
    return InputRef(
        id=row_id or id_for_uri(uri),
        uri=uri,
        label=_clean(row.get("label")),
        modality=_clean(row.get("modality")) or inline_modality or modality_for_uri(uri),
        inline=inline,
    )


def _inline_content(row: Mapping[str, Any]) -> tuple[bytes | None, str | None]:
    if isinstance(row.get("text"), str):
        return row["text"].encode("utf-8"), "text"
    if isinstance(row.get("ids"), list | tuple):
        return "\n".join(str(value) for value in row["ids"] if value is not None).encode(
            "utf-8"
        ), "ids"
    return None, None


def read_manifest_rows(path: str) -> Iterator[dict[str, Any]]:
    """Rows of a CSV, JSONL or Parquet manifest, streamed in record batches."""
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
        for batch in _manifest_batches(path, handle):
            yield from batch.to_pylist()


def manifest_columns(path: str) -> list[str]:
    """Column names of a manifest; used to fail fast on a manifest without `uri`."""
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
        first = next(_manifest_batches(path, handle), None)
    return [] if first is None else first.schema.names


def manifest_format(path: str) -> str:
    extension = posixpath.splitext(path)[1].lower().lstrip(".")
    if extension not in MANIFEST_FORMATS:
        raise ValueError(f"manifest {path} must end in one of .{', .'.join(MANIFEST_FORMATS)}")
    return extension


def _manifest_batches(path: str, handle) -> Iterator[pa.RecordBatch]:
    fmt = manifest_format(path)
    if fmt == "parquet":
        yield from pq.ParquetFile(handle).iter_batches(batch_size=65536)
    elif fmt == "csv":
        # Every column as a string: ids such as "007" must keep their zeros.
        names = pyarrow.csv.open_csv(handle).schema.names
        handle.seek(0)
        as_strings = pyarrow.csv.ConvertOptions(column_types={name: pa.string() for name in names})
        yield from pyarrow.csv.open_csv(handle, convert_options=as_strings)
    else:
        yield from pyarrow.json.read_json(handle).to_batches()


def _clean(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None
