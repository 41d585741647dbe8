"""Reading and writing centroids.parquet (cluster_id, centroid, size)."""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from embedbeam.transforms.table.files import read_parquet, write_bytes
from embedbeam.transforms.table.layout import centroids_schema, vectors


def write_centroids(path: str, centroids: np.ndarray, sizes: np.ndarray) -> None:
    """centroids.parquet: cluster_id, centroid (fixed-size list), size."""
    dim = centroids.shape[1]
    table = pa.table(
        {
            "cluster_id": pa.array(np.arange(len(centroids)), pa.int32()),
            "centroid": pa.FixedSizeListArray.from_arrays(
                pa.array(centroids.astype(np.float32).ravel()), dim
            ),
            "size": pa.array(sizes, pa.int64()),
        },
        schema=centroids_schema(dim),
    )
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    write_bytes(path, buffer.getvalue())


def read_centroids(path: str) -> np.ndarray:
    """Centroids as a float32 [k, d] array, row i being cluster i."""
    table = read_parquet(path)
    return vectors(table.sort_by("cluster_id").column("centroid")).astype(np.float32)
