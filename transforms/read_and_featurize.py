"""ReadAndFeaturize: batches of InputRefs -> featurized batches, the one featurize stage.

`train` and `embed` both read and featurize through this stage, so what a
model was trained on and what it embeds are the same features by
construction. Each batch is read and featurized at once (numpy, or one TFT
call over the batch) by the Beam-free core (transforms/sparse/), and leaves as
one FeaturizedBatch per modality. The next batches are read and featurized in
child processes, or on a thread of its own, while the bundle's thread takes
the last one through the model and the writer.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.windowed_value import WindowedValue

import embedbeam.transforms.common.coders  # noqa: F401 - FeaturizedBatch's coder
from embedbeam.transforms.common.dead_letters import tagged
from embedbeam.transforms.common.metrics import METRICS_NAMESPACE
from embedbeam.transforms.common.progress import Progress, ProgressSpec
from embedbeam.transforms.common.records import (
    DEAD_LETTER_TAG,
    DeadLetter,
    FeaturizedBatch,
    InputRef,
)
from embedbeam.transforms.sparse.featurize_processes import FeaturizeProcesses
from embedbeam.transforms.sparse.read_bytes import DEFAULT_MAX_BYTES
from embedbeam.transforms.sparse.ref_featurizer import FeaturizedRefs, RefFeaturizerSpec


class Featurized(NamedTuple):
    """What ReadAndFeaturize gives: featurized batches, and a dead letter for every input
    that could not be read or featurized."""

    batches: beam.PCollection[FeaturizedBatch]
    dead_letters: beam.PCollection[DeadLetter]


class ReadAndFeaturize(beam.PTransform[beam.PCollection[list[InputRef]], Featurized]):
    """Batches of InputRefs -> their FeaturizedBatches (one per modality of a batch) and
    dead letters.

    `settings_by_modality` holds each modality's featurizer settings as the
    model records them (grid, threshold, ...). `vocabulary_dirs` names the
    model directory of each vocabulary modality (text, ids) whose TFT
    vocabulary turns tokens into ids, as `embed` does; a vocabulary modality
    without one yields tokens, which is what `train` hands to TFT.

    With `processes` >= 1, each batch is read and featurized in that many child
    processes (transforms/sparse/featurize_processes.py), a part on each, each on
    a core of its own; with 0, one batch ahead on a second thread, which overlaps
    what reading and decoding do outside the GIL with what the model does.
    Outputs keep the order of their batches.
    """

    def __init__(
        self,
        settings_by_modality: Mapping[str, Mapping[str, Any]],
        vocabulary_dirs: Mapping[str, str] | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
        progress: ProgressSpec | None = None,
        processes: int = 0,
    ) -> None:
        super().__init__()
        self._spec = RefFeaturizerSpec(
            {m: dict(s) for m, s in settings_by_modality.items()},
            dict(vocabulary_dirs or {}),
            max_bytes,
        )
        self._progress = progress
        self._processes = processes

    @property
    def spec(self) -> RefFeaturizerSpec:
        """How this stage featurizes (settings and vocabularies per modality)."""
        return self._spec

    def expand(self, ref_batches: beam.PCollection[list[InputRef]]) -> Featurized:
        results = ref_batches | "ReadAndExtractSparseFeatures" >> beam.ParDo(
            _ReadAndFeaturizeBatchFn(self._spec, self._progress, self._processes)
        ).with_output_types(FeaturizedBatch).with_outputs(DEAD_LETTER_TAG, main="featurized")
        return Featurized(results.featurized, results[DEAD_LETTER_TAG])


_BATCHES_IN_FLIGHT_PER_WORKER = 2


class _ReadAndFeaturizeBatchFn(beam.DoFn):
    def __init__(
        self, spec: RefFeaturizerSpec, progress: ProgressSpec | None, processes: int
    ) -> None:
        self._spec = spec
        self._progress_spec = progress
        self._processes = processes
        self._progress: Progress | None = None
        self._inputs_seen = Metrics.counter(METRICS_NAMESPACE, "inputs_seen")
        self._inputs_read = Metrics.counter(METRICS_NAMESPACE, "inputs_read")
        self._featurized = Metrics.counter(METRICS_NAMESPACE, "inputs_featurized")
        self._nnz = Metrics.distribution(METRICS_NAMESPACE, "nnz")
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
            reader.submit(featurize.warm_up)  # while the model loads
            self._submit = lambda refs: reader.submit(featurize, refs).result
            self._close = lambda: reader.shutdown(cancel_futures=True)

    def start_bundle(self) -> None:
        while self._in_flight:  # left by a failed bundle: taken off, so the next results are ours
            self._in_flight.popleft()[1]()

    def process(
        self, refs: Sequence[InputRef]
    ) -> Iterator[FeaturizedBatch | beam.pvalue.TaggedOutput]:
        self._in_flight.append((refs, self._submit(refs)))
        # Two batches a process (or the thread) and one more in flight, so a child never
        # waits for its next batch (bench/README.md, "Why the code is this way").
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
