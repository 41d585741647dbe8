"""Coders for the embed job's batches: pickle, as Beam's fallback coder, but a cheap size.

Beam samples the elements of every PCollection to estimate their size, and
its fallback coder estimates by pickling the whole element: a batch of rows
is a large copy, a batch of refs one pickle per ref (measured in
bench/README.md, 'Why the code is this way'). These estimate from lengths
instead. Registered for their types here, they
serve every PCollection declared with those types (`with_output_types`), so
modules that declare them import this one.
"""

from __future__ import annotations

import pickle
from typing import Any

import apache_beam as beam

from embedbeam.transforms.common.records import FeaturizedBatch, InputRef

# A pickled InputRef beside its strings: class reference, field names, framing.
_REF_OVERHEAD_BYTES = 100


class _PickleCoder(beam.coders.Coder):
    """Encodes as Beam's fallback does; subclasses say what type they code and its size."""

    coded_type: type

    def encode(self, value: Any) -> bytes:
        return pickle.dumps(value, pickle.HIGHEST_PROTOCOL)

    def decode(self, encoded: bytes) -> Any:
        return pickle.loads(encoded)

    def is_deterministic(self) -> bool:
        return False

    def to_type_hint(self) -> type:
        return self.coded_type


class InputRefCoder(_PickleCoder):
    coded_type = InputRef

    def estimate_size(self, ref: InputRef) -> int:
        return _ref_bytes(ref)


class FeaturizedBatchCoder(_PickleCoder):
    coded_type = FeaturizedBatch

    def estimate_size(self, batch: FeaturizedBatch) -> int:
        return batch.rows.nbytes + sum(_ref_bytes(ref) for ref in batch.refs)


def _ref_bytes(ref: InputRef) -> int:
    strings = len(ref.id) + len(ref.uri) + len(ref.label or "") + len(ref.modality or "")
    return _REF_OVERHEAD_BYTES + strings + len(ref.inline or b"")


beam.coders.registry.register_coder(InputRef, InputRefCoder)
beam.coders.registry.register_coder(FeaturizedBatch, FeaturizedBatchCoder)
