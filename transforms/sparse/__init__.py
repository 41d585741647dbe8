"""Pure featurizers: raw bytes of one input -> `SparseFeatures`. No Beam in here."""

from embedbeam.transforms.sparse.features import (
    BatchResult,
    InvalidInput,
    SparseFeatures,
    SparseRows,
    apply_each,
    featurize_each,
)

__all__ = [
    "BatchResult",
    "InvalidInput",
    "SparseFeatures",
    "SparseRows",
    "apply_each",
    "featurize_each",
]
