"""Turning a failure into a dead-letter record, the same way in every stage."""

from __future__ import annotations

import logging

import apache_beam as beam
from apache_beam.metrics import Metrics

from transforms.records import DEAD_LETTER_TAG, DeadLetter
from transforms.sparse import InvalidInput

_LOG = logging.getLogger(__name__)
_MAX_MESSAGE = 500


def tagged_dead_letter(stage: str, uri: str, error: Exception) -> beam.pvalue.TaggedOutput:
    """`to_dead_letter` as the dead-letter output of a multi-output DoFn."""
    return beam.pvalue.TaggedOutput(DEAD_LETTER_TAG, to_dead_letter(stage, uri, error))


def to_dead_letter(stage: str, uri: str, error: Exception) -> DeadLetter:
    """The dead letter for `error`, counted per stage.

    Expected failures (InvalidInput) carry their own reason; anything else is
    reported by exception type, so a bug shows up as a new reason rather than a
    crashed job.
    """
    reason = error.reason if isinstance(error, InvalidInput) else type(error).__name__
    message = " ".join(str(error).split())[:_MAX_MESSAGE] or reason
    Metrics.counter("embedbeam", f"dead_letters_{stage}").inc()
    if not isinstance(error, InvalidInput):
        _LOG.warning("%s failed at %s: %s: %s", uri, stage, reason, message)
    return DeadLetter(uri=uri, stage=stage, error=reason, message=message)
