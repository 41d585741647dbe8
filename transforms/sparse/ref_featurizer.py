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
from embedbeam.transforms.sparse.modalities import (
    MODALITIES,
    BatchFeaturizer,
    make_batch_featurizer,
)
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

    @classmethod
    def merge(cls, parts: Sequence[FeaturizedRefs], offsets: Sequence[int]) -> FeaturizedRefs:
        """A batch's result from those of its consecutive parts, each starting at its
        offset in the batch."""
        if len(parts) == 1:
            return parts[0]
        by_modality: dict[str, list[FeaturizedRows]] = {}
        for part, offset in zip(parts, offsets, strict=True):
            for rows in part.featurized:
                shifted = dataclasses.replace(rows, positions=rows.positions + offset)
                by_modality.setdefault(rows.modality, []).append(shifted)
        featurized = [
            FeaturizedRows(
                modality,
                np.concatenate([each.positions for each in rows]),
                _concat([each.rows for each in rows]),
            )
            for modality, rows in by_modality.items()
        ]
        dead_letters = [letter for part in parts for letter in part.dead_letters]
        return cls(sum(part.read for part in parts), featurized, dead_letters)


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

    def warm_up(self) -> None:
        """Pays each modality's first-call costs (its warm_up) before the first batch."""
        for modality in self._featurizers:
            if (warm_up := MODALITIES[modality].warm_up) is not None:
                warm_up()

    def __call__(self, refs: Sequence[InputRef]) -> FeaturizedRefs:
        """The batch's rows and its dead letters, these in the order of their inputs (so
        a batch featurized in parts gives the same list)."""
        dead_letters: dict[int, DeadLetter] = {}
        by_modality: dict[str | None, tuple[list[int], list[bytes]]] = {}
        for position, ref in enumerate(refs):
            data = read_or_dead_letter(ref, self._max_bytes)
            if isinstance(data, DeadLetter):
                dead_letters[position] = data
                continue
            positions, datas = by_modality.setdefault(ref.modality, ([], []))
            positions.append(position)
            datas.append(data)
        featurized = []
        for modality, (positions, datas) in by_modality.items():
            featurizer = self._featurizers.get(modality)
            if featurizer is None:
                error = no_model(modality)
                for i in positions:
                    dead_letters[i] = dead_letter_for(STAGE, refs[i].uri, error)
                continue
            result = featurizer(datas)
            for index, error in result.failures:
                position = positions[index]
                dead_letters[position] = dead_letter_for(STAGE, refs[position].uri, error)
            if result.kept.size:
                kept = np.asarray(positions)[result.kept]
                featurized.append(FeaturizedRows(modality, kept, result.rows))
        read = sum(len(positions) for positions, _ in by_modality.values())
        return FeaturizedRefs(read, featurized, [dead_letters[i] for i in sorted(dead_letters)])


def _concat(parts: list[SparseRows | TokenRows]) -> SparseRows | TokenRows:
    if len(parts) == 1:
        return parts[0]
    if isinstance(parts[0], TokenRows):
        return TokenRows.stack([part.row(i) for part in parts for i in range(part.num_rows)])
    return SparseRows.concat(parts)


def no_model(modality: str | None) -> InvalidInput:
    return InvalidInput("no_model_for_modality", f"no model was given for modality {modality!r}")
