"""Kill anywhere: `kill -9` at any phase of `embed`, the commit's steps included, then the
same command again with --resume or --overwrite gives the table of an uninterrupted run,
and `_SUCCESS` never stands over a partial table in between.

The killed run replaces an older table (of half the inputs) with --overwrite, so the
commit has something to move aside. Kills inside the commit use its test hook
(COMMIT_KILL_AT_ENV, read only there); the other phases are killed from outside when
their mark appears on disk (the claim at launch, the first staged shard).
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import pyarrow.dataset as ds
import pytest

from embedbeam.pipeline import cli
from embedbeam.transforms.common.records import id_for_uri
from embedbeam.transforms.write_embeddings import COMMIT_KILL_AT_ENV, COMMIT_STEPS

pytestmark = pytest.mark.slow

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def inputs(digit_folders, tmp_path_factory) -> pathlib.Path:
    """Forty test digits, four per class; `first_half/` holds twenty of them."""
    root = tmp_path_factory.mktemp("kill_inputs")
    for folder in sorted((digit_folders / "test").iterdir()):
        for index, path in enumerate(sorted(folder.glob("*.png"))[:4]):
            half = "first_half" if index < 2 else "second_half"
            (root / half / folder.name).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, root / half / folder.name)
    return root


def _flags(model, inputs: pathlib.Path, out: pathlib.Path, pattern: str = "*/*/*.png") -> list:
    return ["embed", "--model", str(model), "--input", f"{inputs}/{pattern}",
            "--output", str(out), "--rows-per-shard", "5"]  # fmt: skip


def _table(out: pathlib.Path):
    return ds.dataset(out / "embeddings", partitioning="hive").to_table().sort_by("id")


@pytest.fixture(scope="module")
def clean(trained_model, inputs, tmp_path_factory) -> pathlib.Path:
    out = tmp_path_factory.mktemp("clean") / "out"
    assert cli.main(_flags(trained_model, inputs, out)) == 0
    return out


@pytest.fixture(scope="module")
def older_table(trained_model, inputs, tmp_path_factory) -> pathlib.Path:
    """A committed table of the first half of the inputs, for a run to replace."""
    out = tmp_path_factory.mktemp("older") / "out"
    assert cli.main(_flags(trained_model, inputs, out, "first_half/*/*.png")) == 0
    return out


def _kill(command: list[str], env: dict, when) -> int:
    """Runs `command`, SIGKILLs it once `when()` holds (or lets it kill itself); its status."""
    job = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while job.poll() is None:
        if when is not None and when():
            job.send_signal(signal.SIGKILL)
            break
        assert time.monotonic() < deadline, "the job ran for 300 s"
        time.sleep(0.005)
    status = job.wait()
    assert status == -signal.SIGKILL, job.stderr.read().decode()[-3000:]
    return status


def _success_means_a_whole_table(out: pathlib.Path) -> None:
    """If `_SUCCESS` is there, the table is exactly what its run record lists and counts."""
    if not (out / "_SUCCESS").exists():
        return
    record = json.loads((out / "_manifest.json").read_text())
    files = {
        str(path.relative_to(out))
        for folder in ("embeddings", "dead_letter", "centroids")
        for path in (out / folder).rglob("*")
        if path.is_file()
    }
    assert files == set(record["files"])
    assert _table(out).num_rows == record["rows_written"]


KILLS = [
    ("launch", None),
    ("first shard staged", None),
    *((f"commit: {step}", step) for step in COMMIT_STEPS),
]
# Each kill is rerun one way, in turn; the two mid-move steps, where the two ways part
# most (kept files in place, or all moved aside), both ways.
CASES = [
    (*kill, rerun)
    for index, kill in enumerate(KILLS)
    for rerun in ("--resume", "--overwrite")
    if kill[1] in ("moving_aside", "moving_in") or (rerun == "--resume") == (index % 2 == 0)
]


@pytest.mark.parametrize(
    ("phase", "commit_step", "rerun"), CASES, ids=[f"{p} then {r}" for p, _, r in CASES]
)
def test_a_run_killed_anywhere_then_run_again_gives_the_clean_table(
    trained_model, inputs, clean, older_table, tmp_path, phase, commit_step, rerun
):
    out = tmp_path / "out"
    shutil.copytree(older_table, out)
    flags = _flags(trained_model, inputs, out)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    when = None
    if commit_step:
        env[COMMIT_KILL_AT_ENV] = commit_step
    elif phase == "launch":
        when = (out / "_claim.json").exists
    else:
        when = lambda: any(out.glob("_staging/*/embeddings/*/part-*.parquet"))  # noqa: E731
    command = [sys.executable, "-m", "embedbeam.pipeline.cli.command", *flags, "--overwrite"]

    _kill(command, env, when)

    assert (out / "_claim.json").exists()  # a killed run leaves its claim
    _success_means_a_whole_table(out)
    assert cli.main([*flags, rerun]) == 0
    _success_means_a_whole_table(out)
    table = _table(out)
    listed = sorted(id_for_uri(str(path)) for path in inputs.glob("*/*/*.png"))
    assert table.column("id").to_pylist() == listed  # every input exactly once
    assert table.equals(_table(clean))  # the same embeddings and clusters as a clean run
    record = json.loads((out / "_manifest.json").read_text())
    assert record["inputs_seen"] == record["rows_written"] == 40
    assert not (out / "_claim.json").exists()
    # The killed run's staging (its shards, the old table it moved aside) went at the commit.
    assert not (out / "_staging").exists()
