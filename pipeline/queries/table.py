"""Reading a committed output back: the one place the query commands open a table.

`similar`, `projector`, `report` and the embed job's summary all start here, so
they agree on what a committed table is (`_SUCCESS` present) and fail the same
way, with one line a user can act on.
"""

from __future__ import annotations

import dataclasses
import json
import os
import posixpath
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds

from embedbeam.pipeline.errors import UserError
from embedbeam.transforms.table import layout
from embedbeam.transforms.table.layout import DEAD_LETTER_SCHEMA, RUN_RECORD, SUCCESS, vectors


@dataclasses.dataclass(frozen=True)
class EmbeddingTable:
    """The rows of one modality partition, columns as plain Python and numpy values."""

    modality: str
    ids: list[str]
    uris: list[str]
    labels: list[str | None]
    embeddings: np.ndarray
    cluster_ids: np.ndarray
    model_version: str
    run_id: str  # of the commit that wrote the table

    def __len__(self) -> int:
        return len(self.ids)

    def rows_by_id(self) -> np.ndarray:
        """Row positions in id order: ids are hashes or given ids, so a prefix is a fair
        sample that is the same on every run."""
        return np.argsort(np.asarray(self.ids, dtype=object), kind="stable")

    def first_by_id(self, count: int) -> EmbeddingTable:
        """The `count` rows with the smallest ids (see rows_by_id)."""
        return self.take(self.rows_by_id()[:count])

    def take(self, rows: np.ndarray) -> EmbeddingTable:
        """The table cut to `rows` (positions), in that order."""
        return dataclasses.replace(
            self,
            ids=[self.ids[i] for i in rows],
            uris=[self.uris[i] for i in rows],
            labels=[self.labels[i] for i in rows],
            embeddings=self.embeddings[rows],
            cluster_ids=self.cluster_ids[rows],
        )

    def row_of(self, id_or_uri: str) -> int | None:
        """The row whose id or uri is `id_or_uri`, if any."""
        for column in (self.ids, self.uris):
            if id_or_uri in column:
                return column.index(id_or_uri)
        return None


def read_run_record(output_dir: str) -> dict[str, Any]:
    """The run record (`_manifest.json`) of a committed output (any Beam filesystem); UserError if there is none."""
    exists, open_binary = _file_access(output_dir)
    if not exists(posixpath.join(output_dir, SUCCESS)):
        if not exists(output_dir):
            raise UserError(f"{output_dir} does not exist")
        raise UserError(
            f"{output_dir} holds no committed embeddings table (no {SUCCESS}: the embed job "
            "has not finished there, or failed)"
        )
    with open_binary(posixpath.join(output_dir, RUN_RECORD)) as handle:
        return json.load(handle)


def _file_access(path: str):
    """`exists` and `open` for `path`: the os module's for a local path, Beam's
    FileSystems' for a uri (gs://, s3://, ...). A query of a local table needs nothing
    else from Beam, which is slow to import (bench/README.md, "Command start-up")."""
    if "://" not in path:
        return os.path.exists, lambda name: open(name, "rb")
    from apache_beam.io.filesystems import FileSystems

    return FileSystems.exists, FileSystems.open


def modalities(output_dir: str) -> list[str]:
    """The modality partitions of a committed output, sorted."""
    return sorted(read_run_record(output_dir)["models"])


def load_table(output_dir: str, modality: str | None = None) -> EmbeddingTable:
    """One modality of a committed table; `modality` may be left out if there is only one."""
    manifest = read_run_record(output_dir)
    present = sorted(manifest["models"])
    if modality is None and len(present) > 1:
        raise UserError(
            f"the table holds several modalities ({', '.join(present)}); pick one with --modality"
        )
    if modality is not None and modality not in present:
        raise UserError(f"the table has no modality {modality!r} (it has: {', '.join(present)})")
    chosen = modality or present[0]
    table = embeddings_dataset(output_dir).to_table(
        columns=["id", "uri", "label", "embedding", "cluster_id", "model_version"],
        filter=ds.field("modality") == chosen,
    )
    return EmbeddingTable(
        modality=chosen,
        ids=table.column("id").to_pylist(),
        uris=table.column("uri").to_pylist(),
        labels=table.column("label").to_pylist(),
        embeddings=vectors(table.column("embedding")),
        cluster_ids=table.column("cluster_id").to_numpy(),
        model_version=manifest["models"][chosen]["model_version"],
        run_id=manifest["run_id"],
    )


def index_path(output_dir: str, table: EmbeddingTable, metric: str) -> str:
    """Where `similar` keeps the search index of a table: beside it, named by its commit."""
    return layout.index_path(output_dir, table.modality, metric, table.run_id)


def embeddings_dataset(output_dir: str) -> ds.Dataset:
    return ds.dataset(
        posixpath.join(output_dir, layout.EMBEDDINGS), format="parquet", partitioning="hive"
    )


def dead_letters(output_dir: str) -> pa.Table:
    """Every dead letter of a committed output (an empty table if there were none)."""
    folder = posixpath.join(output_dir, layout.DEAD_LETTER)
    if not posixpath.isdir(folder):
        return DEAD_LETTER_SCHEMA.empty_table()
    return ds.dataset(folder, format="parquet", schema=DEAD_LETTER_SCHEMA).to_table()
