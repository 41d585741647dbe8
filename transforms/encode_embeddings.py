"""EncodeEmbeddings: sparse features -> embeddings, batched through the SavedModel.

Beam's RunInference does the batching (adaptive, within min/max bounds), loads
the model once per worker process and shares it across threads. Stock
TensorFlow handlers need dense, equal-length examples; ours are ragged, so
`SparseEncoderModelHandler` lays a batch end to end (ids, weights,
row_splits) and calls the model's `embed` signature with no padding.
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
from transforms.records import EmbeddedInput, FeaturizedInput, InputRef
from transforms.sparse import SparseFeatures, SparseRows

STAGE = "encode"
EMBED_SIGNATURE = "embed"


class SparseEncoderModelHandler(ModelHandler[SparseFeatures, PredictionResult, Any]):
    """Runs the `embed` signature of an embedbeam SavedModel on ragged batches."""

    def __init__(self, model_dir: str, min_batch_size: int = 32, max_batch_size: int = 2048):
        super().__init__(min_batch_size=min_batch_size, max_batch_size=max_batch_size)
        self._model_dir = model_dir

    def load_model(self) -> Any:
        # Imported here, not at module import: workers that never embed stay TF-free,
        # and the SavedModel loads with tf.saved_model.load (no Keras involved).
        import tensorflow as tf

        return tf.saved_model.load(self._model_dir)

    def run_inference(
        self,
        batch: Sequence[SparseFeatures],
        model: Any,
        inference_args: dict[str, Any] | None = None,
    ) -> Iterable[PredictionResult]:
        rows = SparseRows.stack(batch)
        # Keep a reference to the loaded object: a signature outlives its variables otherwise.
        embeddings = model.signatures[EMBED_SIGNATURE](
            ids=rows.ids, weights=rows.weights, row_splits=rows.row_splits
        )["embedding"].numpy()
        return [
            PredictionResult(example, vector)
            for example, vector in zip(batch, embeddings, strict=True)
        ]

    def get_num_bytes(self, batch: Sequence[SparseFeatures]) -> int:
        return sum(row.ids.nbytes + row.weights.nbytes for row in batch)

    def get_metrics_namespace(self) -> str:
        return "embedbeam"


class EncodeEmbeddings(beam.PTransform):
    """PCollection[FeaturizedInput] -> (PCollection[EmbeddedInput], PCollection[DeadLetter])."""

    def __init__(self, model_dir: str, min_batch_size: int = 32, max_batch_size: int = 2048):
        super().__init__()
        self._handler = KeyedModelHandler(
            SparseEncoderModelHandler(model_dir, min_batch_size, max_batch_size)
        )

    def expand(self, featurized: beam.PCollection[FeaturizedInput]):
        predictions, failures = (
            featurized
            | "KeyByInput" >> beam.Map(lambda item: (item.ref, item.features))
            | "RunEncoder" >> RunInference(self._handler).with_exception_handling()
        )
        embedded = predictions | "ToEmbeddedInput" >> beam.ParDo(_ToEmbeddedInput())
        dead_letters = failures.failed_inferences | "FailedBatchToDeadLetters" >> beam.FlatMap(
            _failed_batch_to_dead_letters
        )
        return embedded, dead_letters


class _ToEmbeddedInput(beam.DoFn):
    def __init__(self) -> None:
        self._embedded = Metrics.counter("embedbeam", "inputs_embedded")

    def process(self, keyed: tuple[InputRef, PredictionResult]) -> Iterator[EmbeddedInput]:
        ref, result = keyed
        self._embedded.inc()
        yield EmbeddedInput(ref=ref, nnz=result.example.nnz, embedding=np.asarray(result.inference))


def _failed_batch_to_dead_letters(failure: tuple[Sequence[tuple[InputRef, Any]], Exception]):
    """A batch the model rejected: every input in it becomes a dead letter."""
    batch, error = failure
    for ref, _ in batch:
        yield to_dead_letter(STAGE, ref.uri, error)
