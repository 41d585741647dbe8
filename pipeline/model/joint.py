"""The joint model: several modalities that share one label space, in one feature-id space.

Each modality keeps its own featurizer and its own ids; a joint model lays
them end to end, modality after modality, so image ids stay [0, 784), audio
ids follow, then the text vocabulary. The encoder's lookup table over that one
space is one input tower per modality (its rows of the table) into the shared
hidden layers, bottleneck and softmax, and one `embed_<modality>` signature a
modality adds its offset to its ids (pipeline/model/encoder.py). No Beam or
TensorFlow in here: `embedbeam --help` imports it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np

JOINT = "joint"  # `train --modality joint`: the model.json modality of a joint model
DEFAULT_MODALITIES = ("image", "audio", "text")
# The supervised-contrastive term's weight in a joint model's loss unless told otherwise:
# the shared softmax alone leaves a modality's rows of a label beside, not among, another
# modality's (cross-modal nearest-row accuracy in bench/joint_space.md).
JOINT_CONTRASTIVE_WEIGHT = 0.5


@dataclasses.dataclass(frozen=True)
class Part:
    """One modality of a joint model: where its ids start in the joint space, and how many."""

    id_offset: int
    vocabulary_size: int


def signature_of(modality: str) -> str:
    """The SavedModel signature that embeds `modality`'s rows of a joint model."""
    return f"embed_{modality}"


def lay_out(sizes: Mapping[str, int]) -> dict[str, Part]:
    """Each modality's ids after the previous ones', in the order of `sizes`."""
    parts, offset = {}, 0
    for modality, size in sizes.items():
        parts[modality] = Part(offset, size)
        offset += size
    return parts


def balanced_index(index: np.ndarray, groups: np.ndarray, seed: int) -> np.ndarray:
    """`index` with every group's rows oversampled to the largest group's count.

    A group is repeated whole as often as it fits, then topped up with a seeded
    sample of its rows without repeats, so each modality weighs the same in an
    epoch: without it, 20,000 images would drown 40 written words.
    """
    rng = np.random.default_rng(seed)
    members = [index[groups[index] == group] for group in np.unique(groups[index])]
    target = max(len(rows) for rows in members)
    balanced = []
    for rows in members:
        whole, rest = divmod(target, len(rows))
        balanced += [np.tile(rows, whole), rng.choice(rows, size=rest, replace=False)]
    return np.concatenate(balanced)


def group_weights(groups: np.ndarray) -> np.ndarray:
    """Per row, 1 / (rows of its group): every group weighs the same in a weighted fit."""
    _, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    return 1.0 / counts[inverse]


def parse_modalities(value: str, supported: Sequence[str]) -> tuple[str, ...]:
    """`image,audio,text` -> the modalities of a joint model, in that order (ValueError if
    one is unknown, repeated, or fewer than two are named)."""
    names = tuple(name.strip() for name in value.split(",") if name.strip())
    unknown = [name for name in names if name not in supported]
    if unknown:
        raise ValueError(f"unknown modality {unknown[0]!r}; supported: {', '.join(supported)}")
    if len(set(names)) != len(names) or len(names) < 2:
        raise ValueError(f"name two or more different modalities, not {value!r}")
    return names
