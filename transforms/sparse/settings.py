"""Featurizer settings a user chooses on the command line, declared as data.

Each modality in the registry (transforms/sparse/modalities.py) lists the
settings its featurizer and vocabulary take: name, type, default and what it
does. `embedbeam train` builds one flag from each (`top_k` -> `--top-k`), and
model.json records the chosen values, so embedding featurizes the same way.
No Beam, no argparse in here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

DEFAULT_TOP_K = 20_000
DEFAULT_OOV_BUCKETS = 100


@dataclasses.dataclass(frozen=True)
class Setting:
    """One setting: a keyword argument of the featurizer (or of TFT's vocabulary).

    `type` is int (a count, at least 1), float, bool (a switch, off by
    default) or str, which `parse` checks (ValueError with what is wrong) and
    keeps as written, so model.json records it as given. `help` says what the
    value does; the command line prefixes it with the modalities that take it.
    """

    name: str
    type: type
    default: int | float | bool | str
    help: str
    parse: Callable[[str], Any] | None = None

    def __post_init__(self) -> None:
        if self.type not in (int, float, bool, str):
            raise TypeError(f"setting {self.name!r}: type must be int, float, bool or str")
        if self.type is bool and self.default is not False:
            raise ValueError(f"setting {self.name!r}: a switch is off by default")
        if (self.type is str) != (self.parse is not None):
            raise ValueError(f"setting {self.name!r}: a str setting, and only one, has a parse")

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


# TFT's vocabulary (transforms/sparse/vocabulary.py), the same for every modality of tokens.
VOCABULARY = (
    Setting("top_k", int, DEFAULT_TOP_K, "keep the top-k most frequent tokens in the vocabulary."),
    Setting(
        "oov_buckets",
        int,
        DEFAULT_OOV_BUCKETS,
        "hash tokens outside the vocabulary into this many buckets.",
    ),
)
