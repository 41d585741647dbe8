"""The on-disk layout of a committed table, declared once: names, paths, schemas.

    OUT/embeddings/modality=<m>/part-*.parquet     rows (the output contract, DESIGN.md)
    OUT/centroids/modality=<m>/centroids.parquet   the centroids rows were assigned with
    OUT/dead_letter/part-*.parquet                 every input that could not be embedded
    OUT/_manifest.json                             the run record: counts, models, options
    OUT/_SUCCESS                                   written last: the table is complete
    OUT/_staging/<run>/...                         a run's files before its commit
    OUT/_staging/<run>/_replaced/...               the table it replaces, moved aside at its commit
    OUT/_claim.json                                the run writing OUT now (table/claim.py)
    OUT/_index/modality=<m>/<metric>-<run>.faiss   `similar`'s search index of the commit

The writer, `--resume` and every reader import these, so the layout has one home.
No Beam in here: the command line and the queries import it cheaply.
"""

from __future__ import annotations

import posixpath

import numpy as np
import pyarrow as pa

SUCCESS = "_SUCCESS"
# The run record. Its file name is the one readers already know; in the code it is the
# "run record", so it is not mistaken for an input manifest (--manifest).
RUN_RECORD = "_manifest.json"
STAGING = "_staging"
# Inside a run's staging folder: the files of the table its commit replaces. Not an
# `embeddings/` folder of its own, so `--resume` never takes them for staged shards.
REPLACED = "_replaced"
CLAIM = "_claim.json"
EMBEDDINGS = "embeddings"
DEAD_LETTER = "dead_letter"
CENTROIDS = "centroids"
CENTROIDS_FILE = "centroids.parquet"
UNASSIGNED = "unassigned"  # --recluster's rows waiting for the fit: staged, never committed
INDEX_DIR = "_index"
TABLE_DIRS = (EMBEDDINGS, DEAD_LETTER, CENTROIDS, INDEX_DIR)
SHARD_PREFIX = "part-"
SHARD_SUFFIX = ".parquet"
DEFAULT_ROWS_PER_SHARD = 10_000


def partition_dir(output_dir: str, table: str, modality: str) -> str:
    """`OUT/<table>/modality=<m>`, a hive partition of `table` (embeddings, centroids)."""
    return posixpath.join(output_dir.rstrip("/"), table, f"modality={modality}")


def centroids_path(output_dir: str, modality: str) -> str:
    return posixpath.join(partition_dir(output_dir, CENTROIDS, modality), CENTROIDS_FILE)


def index_path(output_dir: str, modality: str, metric: str, run_id: str) -> str:
    """Where `similar` keeps the search index of a table: beside it, named by its commit."""
    return posixpath.join(
        partition_dir(output_dir, INDEX_DIR, modality), f"{metric}-{run_id}.faiss"
    )


def staging_dir(output_dir: str, run_id: str) -> str:
    """`OUT/_staging/<run>`: everything run `run_id` writes before its commit."""
    return posixpath.join(output_dir.rstrip("/"), STAGING, run_id)


def replaced_dir(output_dir: str, run_id: str) -> str:
    """`OUT/_staging/<run>/_replaced`: where run `run_id`'s commit moves the table it replaces."""
    return posixpath.join(staging_dir(output_dir, run_id), REPLACED)


def claim_path(output_dir: str) -> str:
    """`OUT/_claim.json`: who writes OUT now; one run at a time."""
    return posixpath.join(output_dir.rstrip("/"), CLAIM)


def staged_dir(output_dir: str, run_id: str, table: str, modality: str) -> str:
    """Where run `run_id` stages files of `table` (embeddings, ...) for one modality.

    Only files under `<table>` = EMBEDDINGS that the commit is told about reach the table.
    """
    return partition_dir(staging_dir(output_dir, run_id), table, modality)


def staged_run(staged_path: str, output_dir: str) -> str:
    """The run that staged `OUT/_staging/<run>/...`."""
    return posixpath.relpath(staged_path, posixpath.join(output_dir, STAGING)).split("/", 1)[0]


def modality_of(path: str) -> str:
    """`.../modality=<m>/part-*.parquet` -> m."""
    return posixpath.basename(posixpath.dirname(path)).partition("=")[2]


def is_shard_name(path: str) -> bool:
    """True for a complete shard's file name (a temporary one never matches)."""
    name = posixpath.basename(path)
    return name.startswith(SHARD_PREFIX) and name.endswith(SHARD_SUFFIX)


def embeddings_schema(dim: int) -> pa.Schema:
    """`OUT/embeddings/modality=<m>/part-*.parquet`, the output contract."""
    return pa.schema(
        [
            ("id", pa.string()),
            ("uri", pa.string()),
            ("label", pa.string()),
            ("embedding", pa.list_(pa.float32(), dim)),
            ("cluster_id", pa.int32()),
            ("cluster_distance", pa.float32()),
            ("nnz", pa.int32()),
            ("model_version", pa.string()),
        ]
    )


def centroids_schema(dim: int) -> pa.Schema:
    """`OUT/centroids/modality=<m>/centroids.parquet` and the model directory's."""
    return pa.schema(
        [
            ("cluster_id", pa.int32()),
            ("centroid", pa.list_(pa.float32(), dim)),
            ("size", pa.int64()),
        ]
    )


DEAD_LETTER_SCHEMA = pa.schema(
    [
        ("uri", pa.string()),
        ("stage", pa.string()),
        ("error", pa.string()),
        ("message", pa.string()),
    ]
)


def vectors(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A fixed-size-list column (embeddings, centroids) as a [rows, width] array."""
    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    # flatten(), not .values: a sliced array (a record batch of a file) starts at an offset.
    return column.flatten().to_numpy().reshape(len(column), column.type.list_size)
