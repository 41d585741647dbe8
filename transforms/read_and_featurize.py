"""Featurize: raw bytes -> SparseFeatures, by the featurizer of the input's modality.

`Featurize` takes one input at a time (training feeds TFT row by row);
`ReadAndFeaturize` takes batches of InputRefs, reads and featurizes each batch
at once (numpy or one TFT call over the batch) and emits one FeaturizedBatch
per modality, which is how the embed job runs. It reads and featurizes the
next batches in child processes, or on a thread of its own, while the bundle's
thread takes the last one through the model and the writer (bench/README.md
measures both).
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import apache_beam as beam
import embedbeam.transforms.common.coders  # noqa: F401 - FeaturizedBatch's coder
from apache_beam.metrics import Metrics
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.windowed_value import WindowedValue
from embedbeam.transforms.common.dead_letters import tagged, tagged_dead_letter
from embedbeam.transforms.common.progress import Progress, ProgressSpec
from embedbeam.transforms.common.records import (
    DEAD_LETTER_TAG,
    FeaturizedBatch,
    FeaturizedInput,
    InputRef,
    RawInput,
)
from embedbeam.transforms.sparse.featurize_processes import FeaturizeProcesses
from embedbeam.transforms.sparse.modalities import Featurizer, make_featurizer
from embedbeam.transforms.sparse.read_bytes import DEFAULT_MAX_BYTES
from embedbeam.transforms.sparse.ref_featurizer import (
    STAGE,
    FeaturizedRefs,
    RefFeaturizerSpec,
    no_model,
)


class Featurize(beam.PTransform):
    """PCollection[RawInput] -> (PCollection[FeaturizedInput], PCollection[DeadLetter]).

    `settings_by_modality` holds each modality's featurizer settings as the
    model recorded them (grid, threshold, ...), so embedding applies exactly the
    training-time featurization. A vocabulary modality (text) yields tokens,
    unless `vocabulary_dirs` names its model: then the model's TFT vocabulary
    turns them into sparse features.
    """

    def __init__(
        self,
        settings_by_modality: Mapping[str, Mapping[str, Any]],
        vocabulary_dirs: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__()
        self._settings_by_modality = {m: dict(s) for m, s in settings_by_modality.items()}
        self._vocabulary_dirs = dict(vocabulary_dirs or {})

    def expand(self, raw_inputs: beam.PCollection[RawInput]):
        results = raw_inputs | "ExtractSparseFeatures" >> beam.ParDo(
            _FeaturizeFn(self._settings_by_modality, self._vocabulary_dirs)
        ).with_outputs(DEAD_LETTER_TAG, main="featurized")
        return results.featurized, results[DEAD_LETTER_TAG]


class _FeaturizeFn(beam.DoFn):
    def __init__(
        self,
        settings_by_modality: Mapping[str, Mapping[str, Any]],
        vocabulary_dirs: Mapping[str, str],
    ) -> None:
        self._settings_by_modality = settings_by_modality
        self._vocabulary_dirs = vocabulary_dirs
        self._featurized = Metrics.counter("embedbeam", "inputs_featurized")
        self._nnz = Metrics.distribution("embedbeam", "nnz")
        self._featurizers: dict[str, Featurizer] = {}

    def setup(self) -> None:
        self._featurizers = {
            modality: make_featurizer(modality, settings, self._vocabulary_dirs.get(modality))
            for modality, settings in self._settings_by_modality.items()
        }

    def process(self, raw: RawInput) -> Iterator[FeaturizedInput | beam.pvalue.TaggedOutput]:
        featurizer = self._featurizers.get(raw.ref.modality)
        try:
            if featurizer is None:
                raise no_model(raw.ref.modality)
            features = featurizer(raw.data)
        except Exception as error:  # noqa: BLE001 - every failure becomes a dead letter
            yield tagged_dead_letter(STAGE, raw.ref.uri, error)
            return
        self._featurized.inc()
        self._nnz.update(features.nnz)
        yield FeaturizedInput(ref=raw.ref, features=features)


class ReadAndFeaturize(beam.PTransform):
    """PCollection[list[InputRef]] -> (PCollection[FeaturizedBatch], PCollection[DeadLetter]).

    Reading and featurizing one batch is one step, so Beam handles each batch
    once instead of every input several times. `settings_by_modality` and
    `vocabulary_dirs` (one model directory per modality) are as for Featurize.
    With `processes` >= 1, batches are read and featurized that many at a time
    in child processes (transforms/sparse/featurize_processes.py), each on a core of its
    own; with 0, one batch ahead on a second thread, which overlaps only what
    reading and decoding do outside the GIL with what the model does outside it.
    Outputs keep the order of their batches.
    """

    def __init__(
        self,
        settings_by_modality: Mapping[str, Mapping[str, Any]],
        vocabulary_dirs: Mapping[str, str],
        max_bytes: int = DEFAULT_MAX_BYTES,
        progress: ProgressSpec | None = None,
        processes: int = 0,
    ) -> None:
        super().__init__()
        self._spec = RefFeaturizerSpec(
            {m: dict(s) for m, s in settings_by_modality.items()}, dict(vocabulary_dirs), max_bytes
        )
        self._progress = progress
        self._processes = processes

    def expand(self, ref_batches: beam.PCollection[list[InputRef]]):
        results = ref_batches | "ReadAndExtractSparseFeatures" >> beam.ParDo(
            _ReadAndFeaturizeBatchFn(self._spec, self._progress, self._processes)
        ).with_output_types(FeaturizedBatch).with_outputs(DEAD_LETTER_TAG, main="featurized")
        return results.featurized, results[DEAD_LETTER_TAG]


_BATCHES_IN_FLIGHT_PER_WORKER = 2


class _ReadAndFeaturizeBatchFn(beam.DoFn):
    def __init__(
        self, spec: RefFeaturizerSpec, progress: ProgressSpec | None, processes: int
    ) -> None:
        self._spec = spec
        self._progress_spec = progress
        self._processes = processes
        self._progress: Progress | None = None
        # The same counters as ReadInputs and Featurize, counted per batch.
        self._inputs_seen = Metrics.counter("embedbeam", "inputs_seen")
        self._inputs_read = Metrics.counter("embedbeam", "inputs_read")
        self._featurized = Metrics.counter("embedbeam", "inputs_featurized")
        self._nnz = Metrics.distribution("embedbeam", "nnz")
        self._submit: Callable[[Sequence[InputRef]], Callable[[], FeaturizedRefs]] | None = None
        self._close: Callable[[], None] | None = None
        # Batches handed on and not emitted yet, each with the call that waits for it.
        self._in_flight: collections.deque[
            tuple[Sequence[InputRef], Callable[[], FeaturizedRefs]]
        ] = collections.deque()

    def setup(self) -> None:
        if self._progress_spec is not None:
            self._progress = self._progress_spec.tracker()
        if self._processes:
            processes = FeaturizeProcesses(self._spec, self._processes)
            self._submit, self._close = processes.submit, processes.close
        else:
            featurize = self._spec.build()
            reader = ThreadPoolExecutor(1, thread_name_prefix="embedbeam-read-ahead")
            self._submit = lambda refs: reader.submit(featurize, refs).result
            self._close = lambda: reader.shutdown(cancel_futures=True)

    def start_bundle(self) -> None:
        while self._in_flight:  # left by a failed bundle: taken off, so the next results are ours
            self._in_flight.popleft()[1]()

    def process(
        self, refs: Sequence[InputRef]
    ) -> Iterator[FeaturizedBatch | beam.pvalue.TaggedOutput]:
        self._in_flight.append((refs, self._submit(refs)))
        # Two batches a process (or the thread) and one more in flight: a child never waits
        # for its next batch (100k MNIST: 4.32-4.58 s against 4.58-4.85 s with one; four: 4.58).
        if len(self._in_flight) > _BATCHES_IN_FLIGHT_PER_WORKER * max(self._processes, 1):
            yield from self._emit(*self._in_flight.popleft())

    def finish_bundle(self) -> Iterator[WindowedValue | beam.pvalue.TaggedOutput]:
        window = GlobalWindow()
        while self._in_flight:
            for output in self._emit(*self._in_flight.popleft()):
                if isinstance(output, beam.pvalue.TaggedOutput):
                    value = WindowedValue(output.value, window.max_timestamp(), [window])
                    yield beam.pvalue.TaggedOutput(output.tag, value)
                else:
                    yield WindowedValue(output, window.max_timestamp(), [window])

    def teardown(self) -> None:
        if self._close is not None:
            self._close()

    def _emit(
        self, refs: Sequence[InputRef], result: Callable[[], FeaturizedRefs]
    ) -> Iterable[FeaturizedBatch | beam.pvalue.TaggedOutput]:
        """A batch's outputs, counted here on the bundle's thread (Beam's metrics belong to it)."""
        featurized = result()
        self._inputs_seen.inc(len(refs))
        if self._progress is not None:
            self._progress.add(len(refs))
        self._inputs_read.inc(featurized.read)
        outputs: list[FeaturizedBatch | beam.pvalue.TaggedOutput] = [
            tagged(dead_letter) for dead_letter in featurized.dead_letters
        ]
        for rows in featurized.featurized:
            self._featurized.inc(rows.rows.num_rows)
            for nnz in rows.rows.lengths.tolist():
                self._nnz.update(nnz)
            outputs.append(
                FeaturizedBatch(
                    modality=rows.modality,
                    refs=tuple(refs[i].without_inline() for i in rows.positions.tolist()),
                    rows=rows.rows,
                )
            )
        return outputs
