"""`embedbeam similar --query clip.wav` on a music table: a phrase never embedded (nor
trained on) finds clips of its instrument family."""

from __future__ import annotations

import pathlib

import pytest

from embedbeam.pipeline import cli
from embedbeam.pipeline.model.model_dir import read_model_info
from examples.music_phrases import TRAIN_FLAGS, music_splits, write_music

pytestmark = pytest.mark.slow

FAMILIES = ("piano", "organ", "bass", "pipe")


@pytest.fixture(scope="module")
def music(tmp_path_factory) -> tuple[pathlib.Path, list[pathlib.Path]]:
    """A table of held-out phrases of four families, by a model trained on their other
    phrases, and a quarter of the held-out phrases as queries (not in the table)."""
    root = tmp_path_factory.mktemp("music")
    splits = music_splits(FAMILIES, train_per_program=8, test_per_program=2, seed=0)
    queries = [c for f in FAMILIES for c in splits.held_out_phrases if c.family == f][::4]
    table_clips = [clip for clip in splits.held_out_phrases if clip not in queries]
    write_music(root / "train", splits.train)
    write_music(root / "table", table_clips)
    query_paths = write_music(root / "queries", queries)
    model, out = root / "model", root / "out"
    train = ["train", "--modality", "audio", "--input", f"{root}/train/*/*.wav", *TRAIN_FLAGS]
    assert cli.main([*train, "--output", str(model)]) == 0
    embed = ["embed", "--model", str(model), "--input", f"{root}/table/*/*.wav"]
    assert cli.main([*embed, "--output", str(out)]) == 0
    return out, query_paths


def test_a_held_out_phrase_lists_clips_of_its_family(music, capsys):
    out, queries = music
    same_family, mostly_same = 0, 0
    for query in queries:
        status = cli.main(["similar", "--embeddings", str(out), "--query", str(query), "-k", "5"])

        lines = capsys.readouterr().out.strip().splitlines()
        assert status == 0 and len(lines) == 6  # header + 5 neighbours
        assert all("/table/" in line for line in lines[1:])  # the query itself is not there
        hits = sum(line.split()[2] == query.parent.name for line in lines[1:])
        same_family += hits
        mostly_same += hits >= 3
    # By chance a quarter of the neighbours would be of the query's family. Training seeds
    # 0-2 give 0.75-0.80 of them, and 10-11 of the 12 queries a majority of their family.
    assert same_family >= 0.6 * 5 * len(queries)
    assert mostly_same >= 0.75 * len(queries)


def test_the_music_model_records_its_training_settings(music):
    out, _ = music
    info = read_model_info(str(out.parent / "model"))

    assert info.featurizer["cells"] == "band_summary"
    assert info.vocabulary_size == 64 * 3  # three statistics of each of 64 mel bands
    assert info.training["early_stopping_patience"] == 20  # --patience 20 in TRAIN_FLAGS
