"""WriteEmbeddings commits a table only when every input is accounted for."""

from __future__ import annotations

import json
import pathlib

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from apache_beam.testing.test_pipeline import TestPipeline

from embedbeam.transforms.common.records import DeadLetter, EmbeddingRows, InputRef, StagedShard
from embedbeam.transforms.table import claim
from embedbeam.transforms.table.centroids import read_centroids, write_centroids
from embedbeam.transforms.table.layout import (
    DEAD_LETTER_SCHEMA,
    EMBEDDINGS,
    embeddings_schema,
    staged_dir,
)
from embedbeam.transforms.table.shards import write_shard_batches
from embedbeam.transforms.write_embeddings import (
    OutputModel,
    Refit,
    RunInfo,
    TableInputs,
    WriteEmbeddings,
)

CENTROIDS = np.array([[0.0, 0.0], [10.0, 10.0]], np.float32)


def _rows(*clustered: tuple[int, int]) -> EmbeddingRows:
    """Image rows `id<i>` in cluster `cluster_id`, for each (i, cluster_id), as one batch."""
    records = [
        {"id": f"id{i}", "uri": f"/in/{i}.png", "label": str(i % 2), "embedding": [i, i],
         "cluster_id": cluster_id, "cluster_distance": float(i), "nnz": 10 + i,
         "model_version": "v1"}
        for i, cluster_id in clustered
    ]  # fmt: skip
    return EmbeddingRows("image", pa.RecordBatch.from_pylist(records, embeddings_schema(2)))


@pytest.fixture
def output_model(tmp_path):
    path = str(tmp_path / "model_centroids.parquet")
    write_centroids(path, CENTROIDS, np.array([0, 0]))
    return OutputModel("image", 2, "v1", lambda: read_centroids(path))


def _ref_batches(name: str, p: beam.Pipeline, count: int) -> beam.PCollection[list[InputRef]]:
    """`count` refs, listed in batches of two as the embed job lists them."""
    refs = [InputRef(f"id{i}", f"/in/{i}.png", None, "image") for i in range(count)]
    return p | name >> beam.Create([refs[start : start + 2] for start in range(0, count, 2)])


def _write(
    output_dir,
    output_model,
    rows,
    dead_letters,
    inputs_seen,
    inputs_expected=None,
    skipped=None,
    run_id="run1",
    **run_flags,
):
    run = RunInfo(run_id, 0.0, {"k": "v"}, inputs_expected, **run_flags)
    with TestPipeline() as p:
        table = TableInputs(
            dead_letters=p | "DeadLetters" >> beam.Create(dead_letters),
            inputs=_ref_batches("Inputs", p, inputs_seen),
            rows=p | "Rows" >> beam.Create(rows),
            skipped=None if skipped is None else _ref_batches("Skipped", p, skipped),
        )
        _ = table | WriteEmbeddings(str(output_dir), [output_model], run)


def test_commit_writes_the_table_centroids_manifest_and_success_marker(tmp_path, output_model):
    out = tmp_path / "out"
    rows = [_rows((0, 0), (1, 0)), _rows((9, 1))]
    dead = [DeadLetter("/in/bad.png", "featurize", "no_active_features", "blank")]

    _write(out, output_model, rows, dead, inputs_seen=4)

    assert (out / "_SUCCESS").exists() and not (out / "_staging").exists()
    table = ds.dataset(out / "embeddings", partitioning="hive").to_table()
    assert table.schema.remove(table.schema.get_field_index("modality")) == embeddings_schema(2)
    assert sorted(table.column("id").to_pylist()) == ["id0", "id1", "id9"]
    manifest = json.loads((out / "_manifest.json").read_text())
    assert (manifest["inputs_seen"], manifest["rows_written"], manifest["dead_letters"]) == (
        4,
        3,
        1,
    )
    assert manifest["models"] == {
        "image": {"model_version": "v1", "embedding_dim": 2, "clusters": 2, "rows": 3}
    }
    centroids = ds.dataset(out / "centroids" / "modality=image").to_table().to_pydict()
    assert centroids["size"] == [2, 1] and centroids["cluster_id"] == [0, 1]
    assert ds.dataset(out / "dead_letter").to_table().column("error").to_pylist() == [
        "no_active_features"
    ]


def test_with_no_dead_letters_the_table_has_an_empty_dead_letter_shard(tmp_path, output_model):
    out = tmp_path / "out"

    _write(out, output_model, [_rows((0, 0), (1, 0))], [], inputs_seen=2)

    [shard] = (out / "dead_letter").iterdir()
    assert pq.read_schema(shard) == DEAD_LETTER_SCHEMA and pq.read_metadata(shard).num_rows == 0
    files = json.loads((out / "_manifest.json").read_text())["files"]
    assert f"dead_letter/{shard.name}" in files


def test_float_columns_are_written_without_a_dictionary(tmp_path, output_model):
    """Embeddings and distances hardly repeat: a dictionary for them is wasted work."""
    out = tmp_path / "out"

    _write(out, output_model, [_rows((0, 0), (1, 0), (9, 1))], [], inputs_seen=3)

    [shard] = (out / "embeddings" / "modality=image").iterdir()
    columns = pq.read_metadata(shard).row_group(0)
    dictionary_encoded = {
        columns.column(i).path_in_schema: "RLE_DICTIONARY" in columns.column(i).encodings
        for i in range(columns.num_columns)
    }
    assert dictionary_encoded == {
        "id": True, "uri": True, "label": True, "embedding.list.element": False,
        "cluster_id": True, "cluster_distance": False, "nnz": True, "model_version": True,
    }  # fmt: skip


def test_a_lost_input_fails_the_commit_and_leaves_no_table(tmp_path, output_model):
    out = tmp_path / "out"

    with pytest.raises(Exception, match="refusing to commit: 5 inputs seen but 3 rows"):
        _write(out, output_model, [_rows((0, 0), (1, 0), (9, 1))], [], inputs_seen=5)

    assert not (out / "_SUCCESS").exists() and not (out / "embeddings").exists()


@pytest.mark.parametrize(
    ("misrouted", "message"),
    [
        (
            dict(inputs_seen=0, inputs_expected=3),
            "3 inputs listed at launch but the job saw only 0",
        ),
        (dict(inputs_seen=3, skipped=3), "3 inputs skipped as already embedded but only 0 rows"),
    ],
    ids=["inputs lost before counting", "inputs skipped with no kept rows"],
)
def test_counts_that_agree_but_cannot_be_true_commit_nothing(
    tmp_path, output_model, misrouted, message
):
    """A runner that misroutes elements (DaskRunner mixes tagged outputs) can make
    seen = rows + dead letters + skipped hold; the commit checks what it knows besides."""
    out = tmp_path / "out"

    with pytest.raises(Exception, match=message):
        _write(out, output_model, [], [], **misrouted)

    assert not (out / "_SUCCESS").exists() and not (out / "embeddings").exists()


def _ids(out) -> list[str]:
    return sorted(
        ds.dataset(out / "embeddings", partitioning="hive").to_table().column("id").to_pylist()
    )


def test_a_second_commit_replaces_the_first_table_whole(tmp_path, output_model):
    """--overwrite: the old table's files are moved aside, then go with this run's staging."""
    out = tmp_path / "out"
    _write(out, output_model, [_rows((0, 0), (1, 0))], [], inputs_seen=2)

    _write(out, output_model, [_rows((7, 1))], [], inputs_seen=1, run_id="run2", replaces=True)

    assert _ids(out) == ["id7"]
    assert json.loads((out / "_manifest.json").read_text())["run_id"] == "run2"
    assert (out / "_SUCCESS").exists() and not (out / "_staging").exists()


def test_without_overwrite_a_table_committed_meanwhile_is_kept_whole(tmp_path, output_model):
    """Both runs passed the launch check; the second's commit re-checks and removes nothing."""
    out = tmp_path / "out"
    _write(out, output_model, [_rows((0, 0), (1, 0))], [], inputs_seen=2)
    before = sorted(p.relative_to(out) for p in out.rglob("*"))

    with pytest.raises(Exception, match="a table was committed to .* nothing removed"):
        _write(out, output_model, [_rows((7, 1))], [], inputs_seen=1, run_id="run2")

    assert _ids(out) == ["id0", "id1"] and (out / "_SUCCESS").exists()
    after = sorted(p.relative_to(out) for p in out.rglob("*") if "_staging" not in p.parts)
    assert after == before


@pytest.mark.parametrize("holder", [None, "someone-else"], ids=["claim gone", "claim taken"])
def test_a_commit_that_lost_its_claim_replaces_nothing(tmp_path, output_model, holder):
    out = tmp_path / "out"
    _write(out, output_model, [_rows((0, 0), (1, 0))], [], inputs_seen=2)
    if holder:
        (out / "_claim.json").write_bytes(claim.new_claim(holder).to_json())

    with pytest.raises(Exception, match="claim lost: run run2 no longer holds"):
        _write(
            out, output_model, [_rows((7, 1))], [], inputs_seen=1, run_id="run2",
            claimed=True, replaces=True,
        )  # fmt: skip

    assert _ids(out) == ["id0", "id1"] and (out / "_SUCCESS").exists()


def test_the_commit_deletes_its_own_staging_folder_and_no_other(tmp_path, output_model):
    out = tmp_path / "out"
    (out / "_claim.json").parent.mkdir(parents=True)
    (out / "_claim.json").write_bytes(claim.new_claim("run1").to_json())
    others = _shard_of_another_run(out)

    _write(out, output_model, [_rows((0, 0), (1, 0))], [], inputs_seen=2, claimed=True)

    assert _ids(out) == ["id0", "id1"] and others.exists()
    assert [p.name for p in (out / "_staging").iterdir()] == ["other"]


def _shard_of_another_run(out) -> pathlib.Path:
    return pathlib.Path(
        write_shard_batches(
            staged_dir(str(out), "other", EMBEDDINGS, "image"),
            embeddings_schema(2),
            [_rows((5, 0)).records],
        )
    )


def test_staged_shards_commit_with_the_centroids_refitted_in_the_run(tmp_path, output_model):
    """--recluster: no rows pass through the writer, only the shards it staged and the refit."""
    out = tmp_path / "out"
    batch = _rows((0, 1), (1, 0), (2, 1)).records
    shard = write_shard_batches(
        staged_dir(str(out), "run1", EMBEDDINGS, "image"), embeddings_schema(2), [batch]
    )
    refitted = np.array([[1.0, 1.0], [2.0, 2.0]], np.float32)
    run = RunInfo("run1", 0.0, {}, inputs_expected=3)

    with TestPipeline() as p:
        table = TableInputs(
            dead_letters=p | "DeadLetters" >> beam.Create([]),
            inputs=_ref_batches("Inputs", p, 3),
            staged_shards=p | "Shards" >> beam.Create([StagedShard("image", shard, (1, 2), 0)]),
            refits=p | "Refits" >> beam.Create([Refit("image", refitted, {"refit": True, "k": 2})]),
        )
        _ = table | WriteEmbeddings(str(out), [output_model], run)

    manifest = json.loads((out / "_manifest.json").read_text())
    assert manifest["rows_written"] == 3
    assert manifest["models"]["image"]["recluster"] == {"refit": True, "k": 2}
    centroids = out / "centroids" / "modality=image" / "centroids.parquet"
    np.testing.assert_array_equal(read_centroids(str(centroids)), refitted)
    assert pq.read_table(centroids).column("size").to_pylist() == [1, 2]
    [committed] = (out / "embeddings" / "modality=image").iterdir()
    assert pq.read_table(committed).column("id").to_pylist() == ["id0", "id1", "id2"]
