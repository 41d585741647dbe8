"""WordNet 3.0 glosses (Debian `wordnet-base`) as labelled text documents.

Each synset line of `data.noun` / `data.verb` is

    offset lex_filenum ss_type w_cnt word lex_id [word lex_id ...] p_cnt ... | gloss

The label is the lexicographer file (the supersense: noun.animal, verb.motion,
...), named by `lex_filenum` in WordNet's standard order (Debian does not ship
the `lexnames` file, so the table lives here). The document is the synset's
lemmas followed by its gloss. Written as `ROOT/<split>/<supersense>/<offset>.txt`.
"""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Iterator

import numpy as np

WORDNET = pathlib.Path("/usr/share/wordnet")
LEXNAMES = (
    "adj.all", "adj.pert", "adv.all", "noun.Tops", "noun.act", "noun.animal", "noun.artifact",
    "noun.attribute", "noun.body", "noun.cognition", "noun.communication", "noun.event",
    "noun.feeling", "noun.food", "noun.group", "noun.location", "noun.motive", "noun.object",
    "noun.person", "noun.phenomenon", "noun.plant", "noun.possession", "noun.process",
    "noun.quantity", "noun.relation", "noun.shape", "noun.state", "noun.substance", "noun.time",
    "verb.body", "verb.change", "verb.cognition", "verb.communication", "verb.competition",
    "verb.consumption", "verb.contact", "verb.creation", "verb.emotion", "verb.motion",
    "verb.perception", "verb.possession", "verb.social", "verb.stative", "verb.weather",
    "adj.ppl",
)  # fmt: skip
# Ten concrete noun supersenses with enough synsets for a balanced quality test.
TEN_NOUN_CLASSES = (
    "noun.animal", "noun.artifact", "noun.body", "noun.food", "noun.location",
    "noun.person", "noun.plant", "noun.substance", "noun.time", "noun.feeling",
)  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Synset:
    offset: str
    supersense: str
    document: str


def read_synsets(wordnet: pathlib.Path = WORDNET) -> Iterator[Synset]:
    """Every noun and verb synset of the installed WordNet."""
    for part in ("data.noun", "data.verb"):
        path = wordnet / part
        if not path.exists():
            raise RuntimeError(f"{path} is missing: apt-get install wordnet-base (make does this)")
        with path.open(encoding="utf-8") as lines:
            for line in lines:
                if line.startswith("  "):  # the licence header
                    continue
                fields, _, gloss = line.partition(" | ")
                columns = fields.split()
                lemma_count = int(columns[3], 16)
                lemmas = [word.replace("_", " ") for word in columns[4 : 4 + 2 * lemma_count : 2]]
                yield Synset(
                    columns[0], LEXNAMES[int(columns[1])], f"{', '.join(lemmas)}: {gloss.strip()}"
                )


def write_documents(
    root: pathlib.Path,
    classes: tuple[str, ...] = TEN_NOUN_CLASSES,
    train_per_class: int = 300,
    test_per_class: int = 100,
    seed: int = 0,
) -> None:
    """A balanced, seeded sample per class: `root/train/<class>/*.txt`, `root/test/...`."""
    by_class: dict[str, list[Synset]] = {name: [] for name in classes}
    for synset in read_synsets():
        if synset.supersense in by_class:
            by_class[synset.supersense].append(synset)
    rng = np.random.default_rng(seed)
    for name, synsets in by_class.items():
        picked = rng.permutation(len(synsets))[: train_per_class + test_per_class]
        for position, index in enumerate(picked):
            split = "train" if position < train_per_class else "test"
            path = root / split / name / f"{synsets[index].offset}.txt"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(synsets[index].document + "\n", encoding="utf-8")
