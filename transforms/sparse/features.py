"""The one value every featurizer produces, and the one error it raises.

A featurizer keeps only the active positions of an input (ids) and their
intensities (weights); everything downstream (TFT, the encoder, Parquet) sees
nothing but this pair, whatever the modality.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from typing import Any

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

    @property
    def nnz(self) -> int:
        return int(self.ids.size)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.row_splits)

    @property
    def nbytes(self) -> int:
        return self.ids.nbytes + self.weights.nbytes + self.row_splits.nbytes

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

    @classmethod
    def concat(cls, parts: Sequence[SparseRows]) -> SparseRows:
        """The rows of every part, one part after the other."""
        if len(parts) == 1:
            return parts[0]
        lengths = np.concatenate([part.lengths for part in parts])
        row_splits = np.zeros(lengths.size + 1, dtype=np.int64)
        np.cumsum(lengths, out=row_splits[1:])
        return cls(
            ids=np.concatenate([part.ids for part in parts]),
            weights=np.concatenate([part.weights for part in parts]),
            row_splits=row_splits,
        )

    def split_by_nnz(self, max_nnz: int, max_rows: int | None = None) -> Iterator[SparseRows]:
        """Consecutive runs of rows with at most `max_nnz` non-zeros each (a longer row
        alone), and at most `max_rows` rows."""
        start = 0
        while start < self.num_rows:
            limit = self.row_splits[start] + max_nnz
            end = max(int(np.searchsorted(self.row_splits, limit, side="right")) - 1, start + 1)
            if max_rows is not None:
                end = min(end, start + max_rows)
            if start == 0 and end == self.num_rows:
                yield self
                return
            first, last = self.row_splits[start], self.row_splits[end]
            yield SparseRows(
                self.ids[first:last],
                self.weights[first:last],
                self.row_splits[start : end + 1] - first,
            )
            start = end

    def take(self, indices: np.ndarray) -> SparseRows:
        """The rows at `indices`, in that order (vectorized: no per-row Python)."""
        indices = np.asarray(indices, dtype=np.int64)
        starts = self.row_splits[indices]
        lengths = self.row_splits[indices + 1] - starts
        row_splits = np.zeros(indices.size + 1, dtype=np.int64)
        np.cumsum(lengths, out=row_splits[1:])
        positions = np.repeat(starts - row_splits[:-1], lengths) + np.arange(row_splits[-1])
        return SparseRows(self.ids[positions], self.weights[positions], row_splits)


@dataclasses.dataclass(frozen=True, eq=False)
class TokenRows:
    """A batch of token lists laid end to end, as SparseRows lays out ids.

    What a vocabulary modality (text, ids) featurizes to before a vocabulary
    exists: training hands these tokens to TFT, which learns the vocabulary;
    embedding turns them into SparseRows through that vocabulary.
    """

    tokens: list[str]
    row_splits: np.ndarray

    @property
    def num_rows(self) -> int:
        return int(self.row_splits.size - 1)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.row_splits)

    @property
    def nbytes(self) -> int:
        """About what the tokens take, without walking their objects."""
        return sum(map(len, self.tokens)) + self.row_splits.nbytes

    def row(self, index: int) -> list[str]:
        return self.tokens[self.row_splits[index] : self.row_splits[index + 1]]

    @classmethod
    def stack(cls, documents: Sequence[list[str]]) -> TokenRows:
        lengths = np.fromiter(map(len, documents), dtype=np.int64, count=len(documents))
        row_splits = np.zeros(len(documents) + 1, dtype=np.int64)
        np.cumsum(lengths, out=row_splits[1:])
        return cls([token for document in documents for token in document], row_splits)


@dataclasses.dataclass(frozen=True, eq=False)
class BatchResult:
    """A batch of inputs featurized together.

    Row i of `rows` belongs to input `kept[i]` (an index into the batch);
    `failures` holds (input index, error) of every input that gave no row.
    """

    rows: SparseRows | TokenRows
    kept: np.ndarray
    failures: list[tuple[int, Exception]]

    def single(self) -> SparseFeatures:
        """A batch of one as a plain call: its features, or its error raised."""
        if self.failures:
            raise self.failures[0][1]
        if isinstance(self.rows, TokenRows):
            raise TypeError("a vocabulary modality needs its model's vocabulary to give features")
        return SparseFeatures(ids=self.rows.ids, weights=self.rows.weights)


def apply_each(
    function: Callable[[bytes], Any], datas: Sequence[bytes]
) -> tuple[list[Any], np.ndarray, list[tuple[int, Exception]]]:
    """`function` of each input: (results, their input indices, (index, error) of failures)."""
    results, kept, failures = [], [], []
    for index, data in enumerate(datas):
        try:
            results.append(function(data))
        except Exception as error:  # noqa: BLE001 - every failure becomes a dead letter
            failures.append((index, error))
            continue
        kept.append(index)
    return results, np.asarray(kept, np.int64), failures


def featurize_each(
    featurize: Callable[[bytes], SparseFeatures], datas: Sequence[bytes]
) -> BatchResult:
    """A batch through a one-input featurizer (no batch form of its own), input by input."""
    features, kept, failures = apply_each(featurize, datas)
    return BatchResult(SparseRows.stack(features), kept, failures)
