"""Pure featurizers: raw bytes of one input -> `SparseFeatures`. No Beam in here."""

from transforms.sparse.features import InvalidInput, SparseFeatures, SparseRows

__all__ = ["InvalidInput", "SparseFeatures", "SparseRows"]
