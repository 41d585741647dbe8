"""Arrow schemas of every table embedbeam writes, declared once (see DESIGN.md)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa


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
    """`OUT/centroids.parquet` and the model directory's `centroids.parquet`."""
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
