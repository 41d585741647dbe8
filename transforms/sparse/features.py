"""The one value every featurizer produces, and the one error it raises.

A featurizer keeps only the active positions of an input (ids) and their
intensities (weights); everything downstream (TFT, the encoder, Parquet) sees
nothing but this pair, whatever the modality.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True, eq=False)
class SparseFeatures:
    """Active feature ids (int64) and their weights (float32), same length."""

    ids: np.ndarray
    weights: np.ndarray

    def __post_init__(self) -> None:
        if self.ids.shape != self.weights.shape or self.ids.ndim != 1:
            raise ValueError(
                f"ids {self.ids.shape} and weights {self.weights.shape} must be equal-length vectors"
            )

    @property
    def nnz(self) -> int:
        return int(self.ids.size)


class InvalidInput(ValueError):
    """An input that cannot be featurized; `reason` is a short machine-readable tag.

    The reason becomes the `error` column of the dead-letter table, so a user can
    group failures by it (`no_active_features`, `undecodable_image`, ...).
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclasses.dataclass(frozen=True, eq=False)
class SparseRows:
    """A batch of sparse rows laid end to end: no padding, however ragged.

    Row i owns `ids[row_splits[i]:row_splits[i + 1]]` (the layout of
    tf.RaggedTensor and of Arrow list arrays), which is exactly what the
    encoder's `embed` signature takes.
    """

    ids: np.ndarray
    weights: np.ndarray
    row_splits: np.ndarray

    @property
    def num_rows(self) -> int:
        return int(self.row_splits.size - 1)

    @classmethod
    def stack(cls, rows: list[SparseFeatures] | tuple[SparseFeatures, ...]) -> SparseRows:
        lengths = np.fromiter((row.nnz for row in rows), dtype=np.int64, count=len(rows))
        row_splits = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=row_splits[1:])
        if not rows:
            return cls(np.zeros(0, np.int64), np.zeros(0, np.float32), row_splits)
        return cls(
            ids=np.concatenate([row.ids for row in rows]).astype(np.int64, copy=False),
            weights=np.concatenate([row.weights for row in rows]).astype(np.float32, copy=False),
            row_splits=row_splits,
        )

    def take(self, indices: np.ndarray) -> SparseRows:
        """The rows at `indices`, in that order (vectorized: no per-row Python)."""
        indices = np.asarray(indices, dtype=np.int64)
        starts = self.row_splits[indices]
        lengths = self.row_splits[indices + 1] - starts
        row_splits = np.zeros(indices.size + 1, dtype=np.int64)
        np.cumsum(lengths, out=row_splits[1:])
        positions = np.repeat(starts - row_splits[:-1], lengths) + np.arange(row_splits[-1])
        return SparseRows(self.ids[positions], self.weights[positions], row_splits)
