"""EncodeEmbeddings: featurized batches -> embeddings, through the SavedModel's `embed`.

Beam's RunInference loads the model once per worker process (shared across
its threads), batches, and reports metrics. Stock TensorFlow handlers need
dense, equal-length examples; ours are ragged, so `SparseEncoderModelHandler`
lays rows end to end (ids, weights, row_splits) and calls the model's `embed`
signature with no padding. Its examples are already batches (SparseRows of the
inputs read and featurized together); RunInference groups them by their total
non-zeros, and no model call gets more than `max_batch_nnz` of them, so the
memory of a call does not depend on how many rows happen to be short or long.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import apache_beam as beam
import numpy as np
from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import (
    KeyedModelHandler,
    ModelHandler,
    PredictionResult,
    RunInference,
)

from transforms.dead_letters import to_dead_letter
from transforms.records import EmbeddedBatch, FeaturizedBatch, InputRef
from transforms.sparse import SparseRows

STAGE = "encode"
EMBED_SIGNATURE = "embed"
DEFAULT_MAX_BATCH_NNZ = 16_384


class SparseEncoderModelHandler(ModelHandler[SparseRows, PredictionResult, Any]):
    """Runs the `embed` signature of an embedbeam SavedModel on ragged batches of rows.

    Each example is a SparseRows (one or many rows); its inference is the
    float32 [rows, d] array of their embeddings.
    """

    def __init__(self, model_dir: str, max_batch_nnz: int = DEFAULT_MAX_BATCH_NNZ):
        super().__init__()
        self._model_dir = model_dir
        self._max_batch_nnz = max_batch_nnz

    def load_model(self) -> Any:
        # Imported here, not at module import: workers that never embed stay TF-free,
        # and the SavedModel loads with tf.saved_model.load (no Keras involved).
        import tensorflow as tf

        return tf.saved_model.load(self._model_dir)

    def run_inference(
        self,
        batch: Sequence[SparseRows],
        model: Any,
        inference_args: dict[str, Any] | None = None,
    ) -> Iterable[PredictionResult]:
        rows = SparseRows.concat(batch)
        # Keep a reference to the loaded object: a signature outlives its variables otherwise.
        embed = model.signatures[EMBED_SIGNATURE]
        parts = [
            embed(ids=part.ids, weights=part.weights, row_splits=part.row_splits)["embedding"]
            for part in rows.split_by_nnz(self._max_batch_nnz)
        ]
        embeddings = np.concatenate([part.numpy() for part in parts]) if parts else None
        ends = np.cumsum([example.num_rows for example in batch])
        return [
            PredictionResult(example, vectors)
            for example, vectors in zip(batch, np.split(embeddings, ends[:-1]), strict=True)
        ]

    def batch_elements_kwargs(self) -> dict[str, Any]:
        """RunInference groups examples (keyed or not) up to `max_batch_nnz` non-zeros."""
        return {"min_batch_size": 1, "max_batch_size": self._max_batch_nnz, "element_size_fn": _nnz}

    def get_num_bytes(self, batch: Sequence[SparseRows]) -> int:
        return sum(rows.ids.nbytes + rows.weights.nbytes for rows in batch)

    def get_metrics_namespace(self) -> str:
        return "embedbeam"


def _nnz(element: SparseRows | tuple[Any, SparseRows]) -> int:
    rows = element[1] if isinstance(element, tuple) else element
    return max(rows.nnz, 1)


class EncodeEmbeddings(beam.PTransform):
    """PCollection[FeaturizedBatch] -> (PCollection[EmbeddedBatch], PCollection[DeadLetter])."""

    def __init__(self, model_dir: str, max_batch_nnz: int = DEFAULT_MAX_BATCH_NNZ):
        super().__init__()
        self._handler = KeyedModelHandler(SparseEncoderModelHandler(model_dir, max_batch_nnz))

    def expand(self, featurized: beam.PCollection[FeaturizedBatch]):
        predictions, failures = (
            featurized
            | "KeyByInputs" >> beam.Map(lambda batch: (batch.refs, batch.rows))
            | "RunEncoder" >> RunInference(self._handler).with_exception_handling()
        )
        embedded = predictions | "ToEmbeddedBatch" >> beam.ParDo(_ToEmbeddedBatch())
        dead_letters = failures.failed_inferences | "FailedBatchToDeadLetters" >> beam.FlatMap(
            _failed_batch_to_dead_letters
        )
        return embedded, dead_letters


class _ToEmbeddedBatch(beam.DoFn):
    def __init__(self) -> None:
        self._embedded = Metrics.counter("embedbeam", "inputs_embedded")

    def process(
        self, keyed: tuple[tuple[InputRef, ...], PredictionResult]
    ) -> Iterator[EmbeddedBatch]:
        refs, result = keyed
        self._embedded.inc(len(refs))
        yield EmbeddedBatch(
            refs=refs, nnz=result.example.lengths, embeddings=np.asarray(result.inference)
        )


def _failed_batch_to_dead_letters(
    failure: tuple[Sequence[tuple[tuple[InputRef, ...], SparseRows]], Exception],
):
    """A batch the model rejected: every input in it becomes a dead letter."""
    batch, error = failure
    for refs, _ in batch:
        for ref in refs:
            yield to_dead_letter(STAGE, ref.uri, error)
