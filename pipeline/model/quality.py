"""Embedding quality measures: k-NN accuracy and cluster purity (Euclidean, as stored)."""

from __future__ import annotations

import numpy as np
from sklearn.neighbors import KNeighborsClassifier


def knn_accuracy(
    reference: np.ndarray,
    reference_labels: np.ndarray,
    queries: np.ndarray,
    query_labels: np.ndarray,
    k: int = 5,
) -> float:
    """Share of queries whose k nearest reference embeddings vote their true label."""
    classifier = KNeighborsClassifier(n_neighbors=k).fit(reference, reference_labels)
    return float(np.mean(classifier.predict(queries) == query_labels))


def leave_one_out_knn_accuracy(embeddings: np.ndarray, labels: np.ndarray, k: int = 5) -> float:
    """k-NN accuracy within one table: each row is voted on by its k nearest other rows."""
    classifier = KNeighborsClassifier(n_neighbors=k + 1).fit(embeddings, labels)
    neighbours = classifier.kneighbors(embeddings, return_distance=False)[:, 1:]
    votes = labels[neighbours]
    predicted = np.array([_majority(row) for row in votes])
    return float(np.mean(predicted == labels))


def cluster_purity(cluster_ids: np.ndarray, labels: np.ndarray) -> float:
    """Share of rows whose label is the most common label of their cluster."""
    matched = 0
    for cluster in np.unique(cluster_ids):
        _, counts = np.unique(labels[cluster_ids == cluster], return_counts=True)
        matched += counts.max()
    return float(matched / len(labels)) if len(labels) else 0.0


def _majority(votes: np.ndarray):
    values, counts = np.unique(votes, return_counts=True)
    return values[np.argmax(counts)]


def nearest_label_accuracy(
    queries: np.ndarray, query_labels: np.ndarray, gallery: np.ndarray, gallery_labels: np.ndarray
) -> float:
    """Share of queries whose single nearest gallery row has their label: across
    modalities, a sound query against a gallery of images, say."""
    if not len(queries) or not len(gallery):
        return float("nan")
    distances = np.linalg.norm(queries[:, None, :] - gallery[None, :, :], axis=2)
    return float(np.mean(gallery_labels[distances.argmin(axis=1)] == query_labels))
