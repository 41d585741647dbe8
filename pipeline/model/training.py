"""Fitting the encoder on analyzed training rows: the split, the fit, its measures.

What the Beam half of `train` leaves (TFT's transformed rows) is put in an order
and a fit/validation split that depend only on the rows' content, so the same
inputs train the same model wherever they live; `train` and `tune-dim` fit
from here.
"""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np
import pyarrow as pa

from embedbeam.pipeline.model import encoder as encoder_lib
from embedbeam.pipeline.model.joint import balanced_index
from embedbeam.pipeline.model.quality import knn_accuracy
from embedbeam.transforms.sparse import SparseRows

VALIDATION_SHARE = 0.1
# A modality of a joint model with fewer training rows than this keeps them all for
# fitting: split 90/10, the 40 digit words of four languages would lose four words.
VALIDATION_MIN_ROWS = 100


def auto_embedding_dim(num_feature_ids: int) -> int:
    """The rule of thumb: round(4th root of the number of possible ids), at least 2."""
    return max(2, round(num_feature_ids**0.25))


def order_by_content(table: pa.Table) -> pa.Table:
    """Rows sorted by a hash of what they hold (label, ids, weights), as `content_key`.

    Beam's row order is not deterministic, and ids hash where a file lives, so
    neither may decide the order of training or the validation split: the same
    inputs in another folder must train the same model.
    """
    rows = rows_of(table)
    label_ids = table.column("label_id").to_numpy()
    keys = []
    for row, (start, end) in enumerate(zip(rows.row_splits[:-1], rows.row_splits[1:], strict=True)):
        digest = hashlib.sha256(label_ids[row].astype(np.int64).tobytes())
        digest.update(rows.ids[start:end].tobytes())
        digest.update(rows.weights[start:end].tobytes())
        keys.append(digest.hexdigest())
    return table.append_column("content_key", pa.array(keys, pa.string())).sort_by("content_key")


def rows_of(table: pa.Table) -> SparseRows:
    ids = table.column("ids").combine_chunks()
    weights = table.column("weights").combine_chunks()
    return SparseRows(
        ids=ids.values.to_numpy().astype(np.int64),
        weights=weights.values.to_numpy().astype(np.float32),
        row_splits=ids.offsets.to_numpy().astype(np.int64),
    )


def is_validation(content_key: str) -> bool:
    """A stable 10% of rows, by their content hash, held out from fitting."""
    return int(content_key[:8], 16) / 0xFFFFFFFF < VALIDATION_SHARE


@dataclasses.dataclass(frozen=True)
class TrainingData:
    """The analyzed training rows, their labels and the split, ready to fit at any width."""

    rows: SparseRows
    label_ids: np.ndarray
    labels: list[str]
    num_ids: int
    fit_index: np.ndarray
    validation_index: np.ndarray
    # A joint model's rows: the index of each row's modality in `modalities`, so
    # fitting can weigh the modalities the same (joint.balanced_index).
    groups: np.ndarray | None = None
    modalities: tuple[str, ...] = ()

    @classmethod
    def from_transformed(
        cls,
        table: pa.Table,
        labels: list[str],
        num_ids: int,
        modalities: tuple[str, ...] = (),
    ) -> TrainingData:
        """TFT's transformed rows (label_id, ids, weights, content_key, and for a joint
        model `modality`), split by content."""
        held_out = np.array([is_validation(key) for key in table.column("content_key").to_pylist()])
        groups = None
        if modalities:
            names = table.column("modality").to_pylist()
            groups = np.array([modalities.index(name) for name in names], np.int64)
            counts = np.bincount(groups, minlength=len(modalities))
            held_out &= counts[groups] >= VALIDATION_MIN_ROWS
        return cls(
            rows=rows_of(table),
            label_ids=table.column("label_id").to_numpy(),
            labels=labels,
            num_ids=num_ids,
            fit_index=np.flatnonzero(~held_out),
            validation_index=np.flatnonzero(held_out),
            groups=groups,
            modalities=modalities,
        )

    def balanced_fit_index(self, seed: int) -> np.ndarray:
        """The rows to fit on: for a joint model each modality oversampled to the largest."""
        if self.groups is None:
            return self.fit_index
        return balanced_index(self.fit_index, self.groups, seed)

    def validation(self) -> tuple[SparseRows, np.ndarray] | None:
        if not self.validation_index.size:
            return None
        return self.rows.take(self.validation_index), self.label_ids[self.validation_index]


def fit_at_width(
    data: TrainingData, dim: int, config: encoder_lib.TrainingConfig
) -> encoder_lib.SparseEncoder:
    fit = data.balanced_fit_index(config.seed)
    return encoder_lib.fit_encoder(
        data.rows.take(fit),
        data.label_ids[fit],
        data.num_ids,
        dim,
        len(data.labels),
        config,
        data.validation(),
    )


def validation_metrics(
    data: TrainingData, predicted: np.ndarray, embeddings: np.ndarray
) -> dict[str, float]:
    """Held-out label accuracy, and 5-NN accuracy of held-out embeddings among the fitted ones."""
    fit, held_out = data.fit_index, data.validation_index
    if not held_out.size:
        return {}
    return {
        "validation_accuracy": float(np.mean(predicted[held_out] == data.label_ids[held_out])),
        "validation_knn5_accuracy": knn_accuracy(
            embeddings[fit], data.label_ids[fit], embeddings[held_out], data.label_ids[held_out]
        ),
    }
