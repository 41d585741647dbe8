"""SkipKnownIds: drop inputs whose ids already have a row, before anything is read.

`embed --resume` names the whole Parquet files whose rows it keeps (the
committed table, finished shards of interrupted runs); an input whose id is in
them is not read, featurized or embedded again. The ids are loaded from
those files by the DoFn, not passed in the graph or as a side input, so a
large table does not bloat the pickled pipeline and runners without side
inputs work. They are loaded at the first input, not in `setup()`: the commit
moves the staged files, and a runner may set a DoFn up again after that (the
DirectRunner does) without giving it any input.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import NamedTuple

import apache_beam as beam
from apache_beam.metrics import Metrics

from embedbeam.transforms.common.metrics import METRICS_NAMESPACE
from embedbeam.transforms.common.records import InputRef
from embedbeam.transforms.table.files import read_parquet

SKIPPED_TAG = "skipped"


def read_ids(paths: Sequence[str]) -> set[str]:
    """Every `id` in the given Parquet files."""
    ids: set[str] = set()
    for path in paths:
        ids.update(read_parquet(path, columns=["id"]).column("id").to_pylist())
    return ids


class TodoAndSkipped(NamedTuple):
    """SkipKnownIds' output: batches of refs still to embed, and batches of refs skipped
    because their id has a row."""

    todo: beam.PCollection[list[InputRef]]
    skipped: beam.PCollection[list[InputRef]]


class SkipKnownIds(beam.PTransform[beam.PCollection[list[InputRef]], TodoAndSkipped]):
    """PCollection[list[InputRef]] -> TodoAndSkipped (batches to embed, batches skipped);
    a batch with nothing left is not emitted.

    A ref that listing marked broken (`problem`, e.g. a duplicate id) is never
    skipped: it must still end as its dead letter.
    """

    def __init__(self, id_files: Sequence[str]) -> None:
        super().__init__()
        self._id_files = tuple(id_files)

    def expand(self, ref_batches: beam.PCollection[list[InputRef]]) -> TodoAndSkipped:
        results = ref_batches | "SkipIdsWithRows" >> beam.ParDo(
            _SkipKnownIdsFn(self._id_files)
        ).with_outputs(SKIPPED_TAG, main="todo")
        return TodoAndSkipped(results.todo, results[SKIPPED_TAG])


class _SkipKnownIdsFn(beam.DoFn):
    def __init__(self, id_files: tuple[str, ...]) -> None:
        self._id_files = id_files
        self._skipped = Metrics.counter(METRICS_NAMESPACE, "inputs_skipped")
        self._known: set[str] | None = None

    def process(self, refs: list[InputRef]) -> Iterator[list[InputRef] | beam.pvalue.TaggedOutput]:
        if self._known is None:
            self._known = read_ids(self._id_files)
        todo, skipped = [], []
        for ref in refs:
            (skipped if ref.problem is None and ref.id in self._known else todo).append(ref)
        if skipped:
            self._skipped.inc(len(skipped))
            yield beam.pvalue.TaggedOutput(SKIPPED_TAG, skipped)
        if todo:
            yield todo
