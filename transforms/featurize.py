"""Featurize: raw bytes -> SparseFeatures, by the featurizer of the input's modality.

`Featurize` takes one input at a time (training feeds TFT row by row);
`ReadAndFeaturize` takes batches of InputRefs, reads and featurizes each batch
at once (numpy or one TFT call over the batch) and emits one FeaturizedBatch
per modality, which is how the embed job runs. It reads and featurizes the
next batch on a thread of its own while the bundle's thread takes the last
one through the model and the writer (bench/README.md measures the gain).
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.windowed_value import WindowedValue

from transforms.dead_letters import tagged_dead_letter
from transforms.modalities import (
    BatchFeaturizer,
    Featurizer,
    make_batch_featurizer,
    make_featurizer,
)
from transforms.progress import Progress, ProgressSpec
from transforms.read_inputs import DEFAULT_MAX_BYTES, read_or_dead_letter
from transforms.records import DEAD_LETTER_TAG, FeaturizedBatch, FeaturizedInput, InputRef, RawInput
from transforms.sparse import InvalidInput

STAGE = "featurize"


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
                raise _no_model(raw.ref.modality)
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
    Batches are read ahead by one on a second thread: what reading and decoding
    do outside the GIL (system calls, libpng) and what the model does outside it
    (TensorFlow's kernels, on the bundle's thread) overlap on two cores.
    Outputs keep the order of their batches.
    """

    def __init__(
        self,
        settings_by_modality: Mapping[str, Mapping[str, Any]],
        vocabulary_dirs: Mapping[str, str],
        max_bytes: int = DEFAULT_MAX_BYTES,
        progress: ProgressSpec | None = None,
    ) -> None:
        super().__init__()
        self._settings_by_modality = {m: dict(s) for m, s in settings_by_modality.items()}
        self._vocabulary_dirs = dict(vocabulary_dirs)
        self._max_bytes = max_bytes
        self._progress = progress

    def expand(self, ref_batches: beam.PCollection[list[InputRef]]):
        results = ref_batches | "ReadAndExtractSparseFeatures" >> beam.ParDo(
            _ReadAndFeaturizeBatchFn(
                self._settings_by_modality, self._vocabulary_dirs, self._max_bytes, self._progress
            )
        ).with_outputs(DEAD_LETTER_TAG, main="featurized")
        return results.featurized, results[DEAD_LETTER_TAG]


@dataclasses.dataclass(frozen=True)
class _BatchOutcome:
    """What one batch of refs became: outputs in order, and what to count for them."""

    outputs: list[FeaturizedBatch | beam.pvalue.TaggedOutput]
    inputs: int
    read: int
    featurized: int
    nnz: list[int]


class _ReadAndFeaturizeBatchFn(beam.DoFn):
    def __init__(
        self,
        settings_by_modality: Mapping[str, Mapping[str, Any]],
        vocabulary_dirs: Mapping[str, str],
        max_bytes: int,
        progress: ProgressSpec | None,
    ) -> None:
        self._settings_by_modality = settings_by_modality
        self._vocabulary_dirs = vocabulary_dirs
        self._max_bytes = max_bytes
        self._progress_spec = progress
        self._progress: Progress | None = None
        # The same counters as ReadInputs and Featurize, counted per batch.
        self._inputs_seen = Metrics.counter("embedbeam", "inputs_seen")
        self._inputs_read = Metrics.counter("embedbeam", "inputs_read")
        self._featurized = Metrics.counter("embedbeam", "inputs_featurized")
        self._nnz = Metrics.distribution("embedbeam", "nnz")
        self._featurizers: dict[str, BatchFeaturizer] = {}
        self._reader: ThreadPoolExecutor | None = None
        self._in_flight: collections.deque[Future[_BatchOutcome]] = collections.deque()

    def setup(self) -> None:
        self._featurizers = {
            modality: make_batch_featurizer(modality, settings, self._vocabulary_dirs[modality])
            for modality, settings in self._settings_by_modality.items()
        }
        if self._progress_spec is not None:
            self._progress = self._progress_spec.tracker()
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="embedbeam-read-ahead")

    def start_bundle(self) -> None:
        self._in_flight.clear()

    def process(
        self, refs: Sequence[InputRef]
    ) -> Iterator[FeaturizedBatch | beam.pvalue.TaggedOutput]:
        self._in_flight.append(self._reader.submit(self._read_and_featurize, refs))
        if len(self._in_flight) > 1:
            yield from self._emit(self._in_flight.popleft().result())

    def finish_bundle(self) -> Iterator[WindowedValue | beam.pvalue.TaggedOutput]:
        window = GlobalWindow()
        while self._in_flight:
            for output in self._emit(self._in_flight.popleft().result()):
                if isinstance(output, beam.pvalue.TaggedOutput):
                    value = WindowedValue(output.value, window.max_timestamp(), [window])
                    yield beam.pvalue.TaggedOutput(output.tag, value)
                else:
                    yield WindowedValue(output, window.max_timestamp(), [window])

    def teardown(self) -> None:
        if self._reader is not None:
            self._reader.shutdown(cancel_futures=True)

    def _emit(self, outcome: _BatchOutcome) -> Iterable[FeaturizedBatch | beam.pvalue.TaggedOutput]:
        """Counts a batch on the bundle's thread (Beam's metrics belong to it) and
        returns its outputs."""
        self._inputs_seen.inc(outcome.inputs)
        if self._progress is not None:
            self._progress.add(outcome.inputs)
        self._inputs_read.inc(outcome.read)
        self._featurized.inc(outcome.featurized)
        for nnz in outcome.nnz:
            self._nnz.update(nnz)
        return outcome.outputs

    def _read_and_featurize(self, refs: Sequence[InputRef]) -> _BatchOutcome:
        outputs: list[FeaturizedBatch | beam.pvalue.TaggedOutput] = []
        read, featurized, nnz = 0, 0, []
        by_modality: dict[str | None, tuple[list[InputRef], list[bytes]]] = {}
        for ref in refs:
            data = read_or_dead_letter(ref, self._max_bytes)
            if isinstance(data, beam.pvalue.TaggedOutput):
                outputs.append(data)
                continue
            read_refs, datas = by_modality.setdefault(ref.modality, ([], []))
            read_refs.append(ref if ref.inline is None else dataclasses.replace(ref, inline=None))
            datas.append(data)
        for modality, (read_refs, datas) in by_modality.items():
            read += len(read_refs)
            featurizer = self._featurizers.get(modality)
            if featurizer is None:
                outputs += [
                    tagged_dead_letter(STAGE, ref.uri, _no_model(modality)) for ref in read_refs
                ]
                continue
            result = featurizer(datas)
            outputs += [
                tagged_dead_letter(STAGE, read_refs[index].uri, error)
                for index, error in result.failures
            ]
            if not result.kept.size:
                continue
            featurized += int(result.kept.size)
            nnz += result.rows.lengths.tolist()
            outputs.append(
                FeaturizedBatch(
                    modality=modality,
                    refs=tuple(read_refs[index] for index in result.kept.tolist()),
                    rows=result.rows,
                )
            )
        return _BatchOutcome(outputs, len(refs), read, featurized, nnz)


def _no_model(modality: str | None) -> InvalidInput:
    return InvalidInput("no_model_for_modality", f"no model was given for modality {modality!r}")
