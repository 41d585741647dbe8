"""Tokens -> sparse rows through the TFT transform graph saved at training.

Text (and categorical ids) get their feature ids from a vocabulary TFT
learned over the training set, and their weights from TFT's tf-idf. The
embed job applies that same graph, loaded from the model directory, so a
token maps to exactly the id and weight it would have had in training; unseen
tokens land in TFT's OOV hash buckets.

The graph runs once per batch of documents, not once per document: a call
costs about the same for one document as for hundreds, and tf-idf weighs each
document on its own, so a document's row does not depend on its batch.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from embedbeam.transforms.sparse import SparseRows, TokenRows

TOKENS = "tokens"


class VocabularyTransform:
    """Loads the model's TFT graph once (lazily, per worker) and applies it per batch."""

    def __init__(self, model_dir: str) -> None:
        self._model_dir = model_dir
        self._transform_output: Any = None

    def __call__(self, documents: TokenRows) -> SparseRows:
        """Row i holds the ids and tf-idf weights of document i."""
        import tensorflow as tf
        import tensorflow_transform as tft

        if not documents.num_rows:
            return SparseRows.stack([])
        if self._transform_output is None:
            self._transform_output = tft.TFTransformOutput(self._model_dir)
        lengths = documents.lengths
        row_of_token = np.repeat(np.arange(documents.num_rows), lengths)
        position = np.arange(lengths.sum()) - np.repeat(documents.row_splits[:-1], lengths)
        raw = {
            TOKENS: tf.sparse.SparseTensor(
                indices=np.stack([row_of_token, position], axis=1),
                values=tf.constant(documents.tokens, tf.string),
                dense_shape=[documents.num_rows, int(lengths.max(initial=0))],
            )
        }
        out = self._transform_output.transform_raw_features(raw, drop_unused_features=True)
        row_of_id = out["ids"].indices.numpy()[:, 0]
        ids = out["ids"].values.numpy().astype(np.int64)
        weights = out["weights"].values.numpy().astype(np.float32)
        if np.any(np.diff(row_of_id) < 0):  # keep each row's values together, in their order
            order = np.argsort(row_of_id, kind="stable")
            row_of_id, ids, weights = row_of_id[order], ids[order], weights[order]
        row_splits = np.zeros(documents.num_rows + 1, np.int64)
        np.cumsum(np.bincount(row_of_id, minlength=documents.num_rows), out=row_splits[1:])
        return SparseRows(ids=ids, weights=weights, row_splits=row_splits)
