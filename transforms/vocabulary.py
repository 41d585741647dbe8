"""Tokens -> SparseFeatures through the TFT transform graph saved at training.

Text (and later categorical ids) get their feature ids from a vocabulary TFT
learned over the training set, and their weights from TFT's tf-idf. The
embed job applies that same graph, loaded from the model directory, so a
token maps to exactly the id and weight it would have had in training; unseen
tokens land in TFT's OOV hash buckets.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from transforms.sparse import SparseFeatures

TOKENS = "tokens"


@dataclasses.dataclass(frozen=True, eq=False)
class TokenFeatures:
    """A document's tokens, before the vocabulary turns them into ids."""

    tokens: list[str]

    @property
    def nnz(self) -> int:
        return len(self.tokens)


class VocabularyTransform:
    """Loads the model's TFT graph once (lazily, per worker) and applies it per input."""

    def __init__(self, model_dir: str) -> None:
        self._model_dir = model_dir
        self._transform_output: Any = None

    def __call__(self, features: TokenFeatures) -> SparseFeatures:
        import tensorflow as tf
        import tensorflow_transform as tft

        if self._transform_output is None:
            self._transform_output = tft.TFTransformOutput(self._model_dir)
        count = len(features.tokens)
        raw = {
            TOKENS: tf.sparse.SparseTensor(
                indices=np.stack([np.zeros(count, np.int64), np.arange(count)], axis=1),
                values=tf.constant(features.tokens),
                dense_shape=[1, count],
            )
        }
        out = self._transform_output.transform_raw_features(raw, drop_unused_features=True)
        return SparseFeatures(
            ids=out["ids"].values.numpy().astype(np.int64),
            weights=out["weights"].values.numpy().astype(np.float32),
        )
