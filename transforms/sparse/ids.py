"""Categorical ids (a manifest's list column) -> tokens for the TFT vocabulary.

The manifest reader hands a row's ids over one per line; each distinct,
non-empty line is one token, in order of first appearance.
"""

from __future__ import annotations

from embedbeam.transforms.sparse.features import InvalidInput


def id_tokens(data: bytes) -> list[str]:
    """The row's distinct ids; InvalidInput `no_ids` for an empty list."""
    tokens = list(dict.fromkeys(line.strip() for line in data.decode("utf-8").split("\n")))
    tokens = [token for token in tokens if token]
    if not tokens:
        raise InvalidInput("no_ids", "the row's id list is empty")
    return tokens
