"""The cross-modal matrix of a committed table whose modalities share one space.

For each query modality and each other (gallery) modality: the share of the
query rows whose nearest gallery row (Euclidean) has their label. A table
written by a joint model reads "a spoken seven finds a picture of a 7" off
it; partitions written by separate models are separate spaces, and have none.
"""

from __future__ import annotations

import numpy as np

from embedbeam.pipeline.model.quality import cluster_purity, nearest_label_accuracy
from embedbeam.pipeline.queries.table import EmbeddingTable, load_table, modalities


def one_space(output_dir: str) -> dict[str, EmbeddingTable]:
    """Every labelled modality partition, if one model wrote them all (a joint model's
    table) and there are two or more; else {}."""
    tables = {modality: load_table(output_dir, modality) for modality in modalities(output_dir)}
    tables = {m: t.take(np.flatnonzero([label is not None for label in t.labels]))
              for m, t in tables.items()}  # fmt: skip
    versions = {table.model_version for table in tables.values()}
    return tables if len(tables) > 1 and len(versions) == 1 else {}


def cross_modal_matrix(tables: dict[str, EmbeddingTable]) -> dict[tuple[str, str], float]:
    """(query modality, gallery modality) -> label accuracy of the nearest gallery row."""
    return {
        (query, gallery): nearest_label_accuracy(
            tables[query].embeddings,
            np.asarray(tables[query].labels),
            tables[gallery].embeddings,
            np.asarray(tables[gallery].labels),
        )  # fmt: skip
        for query in tables
        for gallery in tables
        if query != gallery
    }


def purity_over_all(tables: dict[str, EmbeddingTable]) -> float:
    """Cluster purity of every modality's rows together (the shared centroids)."""
    return cluster_purity(
        np.concatenate([table.cluster_ids for table in tables.values()]),
        np.concatenate([np.asarray(table.labels) for table in tables.values()]),
    )


def format_matrix(matrix: dict[tuple[str, str], float]) -> str:
    """Rows: query modality; columns: gallery modality."""
    names = sorted({query for query, _ in matrix})
    lines = ["query \\ gallery " + "".join(f"{name:>9}" for name in names)]
    for query in names:
        cells = [
            f"{matrix[(query, gallery)]:>9.3f}" if (query, gallery) in matrix else f"{'-':>9}"
            for gallery in names
        ]
        lines.append(f"{query:<16}" + "".join(cells))
    return "\n".join(lines)
