"""A batch of InputRefs -> their sparse rows per modality and their dead letters. No Beam in here.

Everything a batch becomes is said by position in the batch, so what comes
back from a featurizing process (transforms/sparse/featurize_processes.py) is a few
arrays and the rare dead letter, not the refs again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from embedbeam.transforms.common.records import DeadLetter, InputRef, dead_letter_for
from embedbeam.transforms.sparse import InvalidInput, SparseRows, TokenRows
from embedbeam.transforms.sparse.modalities import BatchFeaturizer, make_batch_featurizer
from embedbeam.transforms.sparse.read_bytes import read_or_dead_letter

STAGE = "featurize"


@dataclasses.dataclass(frozen=True, eq=False)
class FeaturizedRows:
    """Row i of `rows` featurizes the input at `positions[i]` of the batch."""

    modality: str
    positions: np.ndarray
    rows: SparseRows | TokenRows


@dataclasses.dataclass(frozen=True, eq=False)
class FeaturizedRefs:
    """What one batch of refs became: rows per modality, a dead letter for each of the rest."""

    read: int
    featurized: list[FeaturizedRows]
    dead_letters: list[DeadLetter]


@dataclasses.dataclass(frozen=True)
class RefFeaturizerSpec:
    """How to featurize: each modality's featurizer settings as its model recorded them,
    and its model directory (for a vocabulary). Small and picklable: a featurizing
    process gets this, and builds the featurizers itself."""

    settings_by_modality: Mapping[str, Mapping[str, Any]]
    vocabulary_dirs: Mapping[str, str]
    max_bytes: int

    def build(self) -> RefFeaturizer:
        return RefFeaturizer(
            {
                modality: make_batch_featurizer(
                    modality, settings, self.vocabulary_dirs.get(modality)
                )
                for modality, settings in self.settings_by_modality.items()
            },
            self.max_bytes,
        )


class RefFeaturizer:
    """Reads a batch of refs and featurizes it, each modality's inputs in one call."""

    def __init__(self, featurizers: Mapping[str, BatchFeaturizer], max_bytes: int) -> None:
        self._featurizers = featurizers
        self._max_bytes = max_bytes

    def __call__(self, refs: Sequence[InputRef]) -> FeaturizedRefs:
        dead_letters: list[DeadLetter] = []
        by_modality: dict[str | None, tuple[list[int], list[bytes]]] = {}
        for position, ref in enumerate(refs):
            data = read_or_dead_letter(ref, self._max_bytes)
            if isinstance(data, DeadLetter):
                dead_letters.append(data)
                continue
            positions, datas = by_modality.setdefault(ref.modality, ([], []))
            positions.append(position)
            datas.append(data)
        featurized = []
        for modality, (positions, datas) in by_modality.items():
            featurizer = self._featurizers.get(modality)
            if featurizer is None:
                error = no_model(modality)
                dead_letters += [dead_letter_for(STAGE, refs[i].uri, error) for i in positions]
                continue
            result = featurizer(datas)
            dead_letters += [
                dead_letter_for(STAGE, refs[positions[index]].uri, error)
                for index, error in result.failures
            ]
            if result.kept.size:
                kept = np.asarray(positions)[result.kept]
                featurized.append(FeaturizedRows(modality, kept, result.rows))
        read = sum(len(positions) for positions, _ in by_modality.values())
        return FeaturizedRefs(read, featurized, dead_letters)


def no_model(modality: str | None) -> InvalidInput:
    return InvalidInput("no_model_for_modality", f"no model was given for modality {modality!r}")
