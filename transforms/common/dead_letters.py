"""Dead letters as the tagged output of a DoFn, counted per stage, the same way in every stage."""

from __future__ import annotations

import apache_beam as beam
from apache_beam.metrics import Metrics

from embedbeam.transforms.common.metrics import METRICS_NAMESPACE
from embedbeam.transforms.common.records import DEAD_LETTER_TAG, DeadLetter, dead_letter_for


def tagged_dead_letter(stage: str, uri: str, error: Exception) -> beam.pvalue.TaggedOutput:
    """`to_dead_letter` as the dead-letter output of a multi-output DoFn."""
    return tagged(dead_letter_for(stage, uri, error))


def to_dead_letter(stage: str, uri: str, error: Exception) -> DeadLetter:
    """The dead letter for `error` (records.dead_letter_for), counted per stage."""
    return counted(dead_letter_for(stage, uri, error))


def tagged(dead_letter: DeadLetter) -> beam.pvalue.TaggedOutput:
    """A dead letter made elsewhere (perhaps in another process), counted and tagged."""
    return beam.pvalue.TaggedOutput(DEAD_LETTER_TAG, counted(dead_letter))


def counted(dead_letter: DeadLetter) -> DeadLetter:
    Metrics.counter(METRICS_NAMESPACE, f"dead_letters_{dead_letter.stage}").inc()
    return dead_letter
