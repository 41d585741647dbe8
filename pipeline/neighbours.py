"""Nearest-neighbour search over embeddings."""

from __future__ import annotations

import numpy as np

METRICS = ("euclidean", "cosine")


def nearest(
    embeddings: np.ndarray, query: np.ndarray, k: int, metric: str = "euclidean"
) -> tuple[np.ndarray, np.ndarray]:
    """Indices and distances of the k rows closest to `query`, closest first."""
    if metric == "euclidean":
        distances = np.linalg.norm(embeddings - query, axis=1)
    elif metric == "cosine":
        norms = np.linalg.norm(embeddings, axis=1) * np.linalg.norm(query)
        distances = 1.0 - (embeddings @ query) / np.maximum(norms, 1e-12)
    else:
        raise ValueError(f"metric must be one of {METRICS}, not {metric!r}")
    k = min(k, len(distances))
    closest = np.argpartition(distances, k - 1)[:k] if k else np.array([], dtype=np.int64)
    order = closest[np.lexsort((closest, distances[closest]))]  # ties: lower row first
    return order, distances[order]
