"""The Beam-free featurizing core, shared by `train` and `embed`.

Pure featurizers per modality (bytes -> sparse ids and weights, or tokens for a
vocabulary), the modality registry, bounded reading, and featurizing a batch of
refs in this process or in child processes. No Beam in here.
"""

from embedbeam.transforms.sparse.features import (
    BatchResult,
    InvalidInput,
    SparseFeatures,
    SparseRows,
    TokenRows,
    apply_each,
    featurize_each,
)

__all__ = [
    "BatchResult",
    "InvalidInput",
    "SparseFeatures",
    "SparseRows",
    "TokenRows",
    "apply_each",
    "featurize_each",
]
