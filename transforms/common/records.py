"""Records passed between stages, and the dead-letter record every stage can emit.

Frozen dataclasses rather than NamedTuples: Beam infers schema (Row) coders for
NamedTuples, which cannot hold numpy arrays; dataclasses are pickled as-is.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import re

import numpy as np
import pyarrow as pa

from embedbeam.transforms.sparse.features import InvalidInput, SparseRows, TokenRows

DEAD_LETTER_TAG = "dead_letter"
_MAX_MESSAGE = 500
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
_LOG = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class InputRef:
    """Where one input comes from and what is known about it before reading it.

    `inline` holds content a manifest row carries itself (text, an id list);
    reading hands it on and drops it from the ref. `problem` (reason, message)
    marks an input that listing already knows is broken (a bad .jsonl line):
    reading turns it into a dead letter.
    """

    id: str
    uri: str
    label: str | None
    modality: str | None
    inline: bytes | None = None
    problem: tuple[str, str] | None = None

    def without_inline(self) -> InputRef:
        """The ref as it goes on once read: content a manifest carried inline is in the data."""
        return self if self.inline is None else dataclasses.replace(self, inline=None)


@dataclasses.dataclass(frozen=True, eq=False)
class FeaturizedBatch:
    """Inputs of one modality featurized together: row i of `rows` belongs to `refs[i]`.

    Both jobs pass batches, not single inputs, from reading on: Beam's cost per
    element is paid once per batch. Rows are sparse ids and weights, or, for a
    vocabulary modality in training (no vocabulary yet), tokens.
    """

    modality: str
    refs: tuple[InputRef, ...]
    rows: SparseRows | TokenRows


@dataclasses.dataclass(frozen=True, eq=False)
class EmbeddedBatch:
    """Row i of `embeddings` (float32 [n, d]) embeds `refs[i]`, which had `nnz[i]` features."""

    refs: tuple[InputRef, ...]
    nnz: np.ndarray
    embeddings: np.ndarray


@dataclasses.dataclass(frozen=True, eq=False)
class EmbeddingRows:
    """Rows of the embeddings table of one modality, as one Arrow record batch
    (columns: schemas.embeddings_schema). A batch of inputs stays one element
    up to the writer, which appends it to its shard as is."""

    modality: str
    records: pa.RecordBatch


@dataclasses.dataclass(frozen=True)
class StagedShard:
    """An embeddings file staged whole for the commit, with its rows per cluster.

    Written by --recluster's assignment (transforms/assign_staged_shards.py):
    the commit needs the file, the cluster sizes and the inertia, never the rows.
    """

    modality: str
    path: str
    cluster_sizes: tuple[int, ...]  # rows of cluster i
    squared_distance_units: int  # sum of squared distances, in units of 2**-32


@dataclasses.dataclass(frozen=True)
class DeadLetter:
    """An input that could not be embedded: which stage gave up, and why."""

    uri: str
    stage: str
    error: str
    message: str

    def to_record(self) -> dict:
        return dataclasses.asdict(self)


def dead_letter_for(stage: str, uri: str, error: Exception) -> DeadLetter:
    """The dead letter for `error` at `stage`.

    Expected failures (InvalidInput) carry their own reason; anything else is
    reported, and logged, by exception type, so a bug shows up as a new reason
    rather than a crashed job.
    """
    reason = error.reason if isinstance(error, InvalidInput) else type(error).__name__
    # Without the addresses some libraries print (`<_io.BytesIO object at 0x7f...>`),
    # the same input gives the same dead letter in every run.
    message = _ADDRESS.sub("", " ".join(str(error).split()))[:_MAX_MESSAGE] or reason
    if not isinstance(error, InvalidInput):
        _LOG.warning("%s failed at %s: %s: %s", uri, stage, reason, message)
    return DeadLetter(uri=uri, stage=stage, error=reason, message=message)


def id_for_uri(uri: str) -> str:
    """Stable id of an input that has none of its own: a hash of where it lives."""
    return hashlib.sha256(uri.encode("utf-8")).hexdigest()[:32]
