"""EncodeEmbeddings: featurized batches -> embeddings, through the SavedModel's `embed`.

Beam's RunInference loads the model once per worker process (shared across
its threads), batches, and reports metrics. Stock TensorFlow handlers need
dense, equal-length examples; ours are ragged, so `SparseEncoderModelHandler`
lays rows end to end (ids, weights, row_splits) and calls the model's `embed`
signature with no padding. Its examples are already batches (FeaturizedBatch:
the inputs read and featurized together, and their rows); RunInference groups
them by their total non-zeros, and no model call gets more than
`max_batch_nnz` of them (nor more than `max_batch_rows` rows, for a dense
lookup), so the memory of a call does not depend on how many rows happen to
be short or long.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, NamedTuple

import apache_beam as beam
import numpy as np
from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import ModelHandler, RunInference

from embedbeam.transforms.common.dead_letters import to_dead_letter
from embedbeam.transforms.common.metrics import METRICS_NAMESPACE
from embedbeam.transforms.common.records import DeadLetter, EmbeddedBatch, FeaturizedBatch
from embedbeam.transforms.sparse import SparseRows

STAGE = "encode"
EMBED_SIGNATURE = "embed"
# Models over vocabularies up to this size look their inputs up as a dense
# [rows, vocabulary] matrix (pipeline/model/encoder.py).
DENSE_LOOKUP_MAX_VOCABULARY = 1024
# ... and one call of theirs holds at most this many of its floats (64 MB).
DENSE_LOOKUP_MAX_FLOATS = 16 * 1024 * 1024


def default_max_batch_nnz(vocabulary_size: int) -> int:
    """Non-zeros per encoder call unless --max-batch-nnz says otherwise.

    A dense lookup costs little per row and much per call (TensorFlow's
    Python side), so its calls are large (a whole batch of digits is one
    call) and `max_batch_rows` bounds their memory. The sparse lookup gathers
    a table row per non-zero, so its calls stay small enough for those rows
    to fit in cache (measured in bench/README.md, 'Why the code is this way').
    """
    return 262_144 if vocabulary_size <= DENSE_LOOKUP_MAX_VOCABULARY else 16_384


def max_batch_rows(vocabulary_size: int) -> int | None:
    """Rows per encoder call: bounded for a dense lookup, whose call holds [rows + 1,
    vocabulary] floats however few non-zeros the rows have; not for a sparse one."""
    if vocabulary_size > DENSE_LOOKUP_MAX_VOCABULARY:
        return None
    return DENSE_LOOKUP_MAX_FLOATS // vocabulary_size - 1


class SparseEncoderModelHandler(ModelHandler[FeaturizedBatch, EmbeddedBatch, Any]):
    """Runs the `embed` signature of an embedbeam SavedModel on ragged batches of rows
    (or `signature`: a joint model's `embed_<modality>`, pipeline/model/joint.py).

    Each example is a FeaturizedBatch (the inputs read and featurized
    together); its inference is their EmbeddedBatch. Examples carry their
    inputs, so no KeyedModelHandler is needed (it pickles every key of every
    call only to report bytes).
    """

    def __init__(
        self,
        model_dir: str,
        max_batch_nnz: int,
        max_batch_rows: int | None = None,
        signature: str = EMBED_SIGNATURE,
    ):
        super().__init__()
        self._model_dir = model_dir
        self._max_batch_nnz = max_batch_nnz
        self._max_batch_rows = max_batch_rows
        self._signature = signature
        self._embedded = Metrics.counter(METRICS_NAMESPACE, "inputs_embedded")

    def load_model(self) -> Any:
        # Imported here, not at module import: workers that never embed stay TF-free,
        # and the SavedModel loads with tf.saved_model.load (no Keras involved).
        import tensorflow as tf

        return tf.saved_model.load(self._model_dir)

    def run_inference(
        self,
        batch: Sequence[FeaturizedBatch],
        model: Any,
        inference_args: dict[str, Any] | None = None,
    ) -> Iterable[EmbeddedBatch]:
        rows = SparseRows.concat([example.rows for example in batch])
        # Keep a reference to the loaded object: a signature outlives its variables otherwise.
        embed = model.signatures[self._signature]
        parts = [
            embed(ids=part.ids, weights=part.weights, row_splits=part.row_splits)["embedding"]
            for part in rows.split_by_nnz(self._max_batch_nnz, self._max_batch_rows)
        ]
        embeddings = np.concatenate([part.numpy() for part in parts]) if parts else None
        self._embedded.inc(rows.num_rows)
        ends = np.cumsum([example.rows.num_rows for example in batch])
        return [
            EmbeddedBatch(refs=example.refs, nnz=example.rows.lengths, embeddings=vectors)
            for example, vectors in zip(batch, np.split(embeddings, ends[:-1]), strict=True)
        ]

    def batch_elements_kwargs(self) -> dict[str, Any]:
        """RunInference groups examples up to `max_batch_nnz` non-zeros. A fixed target
        (min = max): examples are batches already, and an adaptive one refits a
        regression after every call."""
        return {
            "min_batch_size": self._max_batch_nnz,
            "max_batch_size": self._max_batch_nnz,
            "element_size_fn": _nnz,
        }

    def get_num_bytes(self, batch: Sequence[FeaturizedBatch]) -> int:
        return sum(example.rows.ids.nbytes + example.rows.weights.nbytes for example in batch)

    def get_metrics_namespace(self) -> str:
        return METRICS_NAMESPACE


def _nnz(example: FeaturizedBatch) -> int:
    return max(example.rows.nnz, 1)


class Encoded(NamedTuple):
    """EncodeEmbeddings' output: the embedded batches, and a dead letter for every input of
    a batch the model rejected."""

    embedded: beam.PCollection[EmbeddedBatch]
    dead_letters: beam.PCollection[DeadLetter]


class EncodeEmbeddings(beam.PTransform[beam.PCollection[FeaturizedBatch], Encoded]):
    """PCollection[FeaturizedBatch] -> Encoded (embedded batches, dead letters)."""

    def __init__(
        self,
        model_dir: str,
        max_batch_nnz: int,
        max_batch_rows: int | None = None,
        signature: str = EMBED_SIGNATURE,
    ):
        super().__init__()
        self._handler = SparseEncoderModelHandler(
            model_dir, max_batch_nnz, max_batch_rows, signature
        )

    def expand(self, featurized: beam.PCollection[FeaturizedBatch]) -> Encoded:
        embedded, failures = (
            featurized | "RunEncoder" >> RunInference(self._handler).with_exception_handling()
        )
        dead_letters = failures.failed_inferences | "FailedBatchToDeadLetters" >> beam.FlatMap(
            _failed_batch_to_dead_letters
        )
        return Encoded(embedded, dead_letters)


def _failed_batch_to_dead_letters(
    failure: tuple[Sequence[FeaturizedBatch], Exception],
) -> Iterator[DeadLetter]:
    """A batch the model rejected: every input in it becomes a dead letter."""
    examples, error = failure
    for example in examples:
        for ref in example.refs:
            yield to_dead_letter(STAGE, ref.uri, error)
