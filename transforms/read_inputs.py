"""ReadInputs: InputRef -> the input's bytes, or a dead letter saying why not."""

from __future__ import annotations

from collections.abc import Iterator

import apache_beam as beam
from apache_beam.metrics import Metrics
from embedbeam.transforms.common.dead_letters import tagged
from embedbeam.transforms.common.progress import Progress, ProgressSpec
from embedbeam.transforms.common.records import DEAD_LETTER_TAG, DeadLetter, InputRef, RawInput
from embedbeam.transforms.sparse.read_bytes import DEFAULT_MAX_BYTES, read_or_dead_letter


class ReadInputs(beam.PTransform):
    """PCollection[InputRef] -> (PCollection[RawInput], PCollection[DeadLetter]).

    Every input passes here exactly once, read or not, so this is where the
    job's progress (`progress`) is counted.
    """

    def __init__(
        self, max_bytes: int = DEFAULT_MAX_BYTES, progress: ProgressSpec | None = None
    ) -> None:
        super().__init__()
        self._max_bytes = max_bytes
        self._progress = progress

    def expand(self, refs: beam.PCollection[InputRef]):
        read = _ReadBytes(self._max_bytes, self._progress)
        results = refs | "ReadInputBytes" >> beam.ParDo(read).with_outputs(
            DEAD_LETTER_TAG, main="raw"
        )
        return results.raw, results[DEAD_LETTER_TAG]


class _ReadBytes(beam.DoFn):
    def __init__(self, max_bytes: int, progress: ProgressSpec | None) -> None:
        self._max_bytes = max_bytes
        self._progress_spec = progress
        self._progress: Progress | None = None
        self._inputs_seen = Metrics.counter("embedbeam", "inputs_seen")
        self._inputs_read = Metrics.counter("embedbeam", "inputs_read")

    def setup(self) -> None:
        if self._progress_spec is not None:
            self._progress = self._progress_spec.tracker()

    def process(self, ref: InputRef) -> Iterator[RawInput | beam.pvalue.TaggedOutput]:
        self._inputs_seen.inc()
        if self._progress is not None:
            self._progress.add()
        data = read_or_dead_letter(ref, self._max_bytes)
        if isinstance(data, DeadLetter):
            yield tagged(data)
            return
        self._inputs_read.inc()
        yield RawInput(ref=ref.without_inline(), data=data)
