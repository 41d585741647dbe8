"""Nearest-neighbour search over embeddings: exact, or through a cached HNSW index."""

from __future__ import annotations

import logging
import os

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


# Tables at least this large are searched through an HNSW index: exact search grows
# linearly with the rows (latency and recall measured in bench/similar_index.md).
INDEX_MIN_ROWS = 100_000
INDEX_CHOICES = ("auto", "always", "never")
HNSW_M = 16  # graph degree; with these, recall@10 = 1.0 on 70k MNIST embeddings
HNSW_EF_CONSTRUCTION = 128
HNSW_EF_SEARCH = 64
_LOG = logging.getLogger(__name__)


def search(
    embeddings: np.ndarray,
    query: np.ndarray,
    k: int,
    metric: str = "euclidean",
    index_path: str | None = None,
    use_index: str = "auto",
) -> tuple[np.ndarray, np.ndarray]:
    """Like `nearest`, through an HNSW index cached at `index_path` when the table is large.

    The index only proposes candidates; their distances are computed exactly,
    so what is printed is the same measure either way.
    """
    if use_index == "never" or (use_index == "auto" and len(embeddings) < INDEX_MIN_ROWS):
        return nearest(embeddings, query, k, metric)
    index = _cached_index(embeddings, metric, index_path)
    index.hnsw.efSearch = max(HNSW_EF_SEARCH, k)  # not stored in the file
    _, found = index.search(_as_indexed(query[None, :], metric), k)
    candidates = found[0][found[0] >= 0]
    order, distances = nearest(embeddings[candidates], query, k, metric)
    return candidates[order], distances


def _cached_index(embeddings: np.ndarray, metric: str, path: str | None):
    """The index of `embeddings`, read from `path` if built before, else built and saved."""
    import faiss

    if path and os.path.exists(path):
        return faiss.read_index(path)
    _LOG.info("building the search index of %d rows (once; kept at %s)", len(embeddings), path)
    index = build_index(embeddings, metric)
    if path:
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            partial = f"{path}.partial-{os.getpid()}"
            faiss.write_index(index, partial)
            os.replace(partial, path)  # readers never see half an index
        except OSError as error:
            _LOG.warning(
                "could not keep the index at %s (%s); it is rebuilt next time", path, error
            )
    return index


def build_index(embeddings: np.ndarray, metric: str = "euclidean"):
    """A faiss HNSW index of `embeddings`, built with one thread: the same table, the same index.

    faiss-cpu over hnswlib and usearch: equal or better recall in
    bench/similar_index.md, and actively maintained.
    """
    import faiss

    faiss.omp_set_num_threads(1)
    index = faiss.IndexHNSWFlat(embeddings.shape[1], HNSW_M)
    index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    index.add(_as_indexed(embeddings, metric))
    index.hnsw.efSearch = HNSW_EF_SEARCH
    return index


def _as_indexed(vectors: np.ndarray, metric: str) -> np.ndarray:
    """Cosine ranks like Euclidean over unit vectors, so one L2 index serves both."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if metric == "cosine":
        vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    return vectors
