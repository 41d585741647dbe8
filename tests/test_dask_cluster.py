"""`embedbeam embed --runner=DaskRunner` on a dask.distributed cluster started as separate
processes (`dask scheduler`, `dask worker --nworkers 2`), as on a cluster: the table
equals the DirectRunner's row for row, with and without --recluster (side inputs), and
still does when a worker is killed with SIGKILL mid-job and a new one joins.
The workers run from this venv, where embedbeam is installed, so they import it."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from embedbeam.pipeline import cli
from tests.processes import free_port, stop
from tests.stall_after_first_shard import STALL_FLAG_ENV
from tests.test_runners import _sorted_output

distributed = pytest.importorskip("distributed")

PER_CLASS = 5
BIN = pathlib.Path(sys.executable).parent
STALL_PRELOAD = pathlib.Path(__file__).with_name("stall_after_first_shard.py")
START_TIMEOUT_S, JOB_TIMEOUT_S = 120, 600


def _start_dask(logs: pathlib.Path, name: str, *command: str, env=None) -> subprocess.Popen:
    """`dask COMMAND...` as a process of its own, logging to `logs/<name>.log`."""
    log = (logs / f"{name}.log").open("w")
    return subprocess.Popen(
        [str(BIN / "dask"), *command, "--no-dashboard"],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=logs,
        env=env,
    )


def _start_scheduler(logs: pathlib.Path) -> tuple[str, subprocess.Popen]:
    port = free_port()
    scheduler = _start_dask(
        logs, "scheduler", "scheduler", "--host", "127.0.0.1", "--port", str(port)
    )
    return f"tcp://127.0.0.1:{port}", scheduler


def _wait_for_workers(address: str, count: int) -> None:
    with distributed.Client(address, timeout=START_TIMEOUT_S) as client:
        client.wait_for_workers(count, timeout=START_TIMEOUT_S)


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory) -> Iterator[str]:
    """A scheduler and 2 single-threaded workers, each its own process: the address."""
    logs = tmp_path_factory.mktemp("dask_logs")
    address, scheduler = _start_scheduler(logs)
    processes = [scheduler]
    try:
        processes.append(
            _start_dask(logs, "workers", "worker", address, "--nworkers", "2", "--nthreads", "1")
        )
        _wait_for_workers(address, 2)
        yield address
    finally:
        for process in reversed(processes):
            stop(process)


@pytest.fixture(scope="module")
def few_digits(digit_folders, tmp_path_factory) -> pathlib.Path:
    """5 test digits of each class, ImageFolder layout."""
    root = tmp_path_factory.mktemp("few_digits")
    for label_dir in sorted((digit_folders / "test").iterdir()):
        (root / label_dir.name).mkdir()
        for image in sorted(label_dir.iterdir())[:PER_CLASS]:
            shutil.copy(image, root / label_dir.name / image.name)
    return root


def _embed_args(model: pathlib.Path, inputs: pathlib.Path, out: pathlib.Path) -> list[str]:
    return ["embed", "--model", str(model), "--input", f"{inputs}/**", "--output", str(out)]


def _embed_on_dask(args: list[str], address: str) -> list[str]:
    """The `embedbeam` command line that runs `args` on the Dask scheduler at `address`."""
    return [
        str(BIN / "embedbeam"),
        *args,
        "--runner=DaskRunner",
        f"--dask_client_address={address}",
    ]


def _executed_per_worker(address: str) -> dict[str, int]:
    with distributed.Client(address, timeout=START_TIMEOUT_S) as client:
        return client.run(lambda dask_worker: dask_worker.state.executed_count)


@pytest.mark.slow
@pytest.mark.parametrize("extra", [[], ["--recluster", "4"]], ids=["assign", "recluster"])
def test_embed_on_a_dask_cluster_equals_the_direct_runner(
    trained_model, few_digits, dask_cluster, tmp_path, extra
):
    direct, on_dask = tmp_path / "direct", tmp_path / "dask"
    # Batches of 5: 10 of them, so that a Reshuffle has something to spread.
    extra = [*extra, "--max-batch-size", "5"]
    assert cli.main([*_embed_args(trained_model, few_digits, direct), *extra]) == 0
    before = _executed_per_worker(dask_cluster)

    run = subprocess.run(
        _embed_on_dask([*_embed_args(trained_model, few_digits, on_dask), *extra], dask_cluster),
        capture_output=True,
        text=True,
        timeout=JOB_TIMEOUT_S,
    )

    assert run.returncode == 0, run.stderr[-3000:]
    assert (on_dask / "_SUCCESS").exists()
    ids, embeddings, clusters = _sorted_output(on_dask)
    ref_ids, ref_embeddings, ref_clusters = _sorted_output(direct)
    assert ids == ref_ids and len(ids) == 10 * PER_CLASS
    assert embeddings.tobytes() == ref_embeddings.tobytes()
    assert clusters == ref_clusters
    after = _executed_per_worker(dask_cluster)
    assert all(after[worker] > before.get(worker, 0) for worker in after), (before, after)


def _wait_for_file(path: pathlib.Path, job: subprocess.Popen, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert job.poll() is None, f"the job ended ({job.returncode}) before {path} appeared"
        assert time.monotonic() < deadline, f"no {path} after {timeout} s"
        time.sleep(0.1)
    return path.read_text()


@pytest.mark.slow
def test_a_worker_killed_mid_job_loses_nothing_and_commits_no_shard_of_its_task(
    trained_model, few_digits, tmp_path
):
    """The only worker writes one shard and stalls in that task (tests/
    stall_after_first_shard.py); it is killed with SIGKILL, a new worker joins, Dask
    reruns the lost tasks: the table equals the DirectRunner's, each input once, and the
    shard of the killed task is neither in the table nor left in OUT."""
    direct, on_dask, logs = tmp_path / "direct", tmp_path / "dask", tmp_path / "logs"
    logs.mkdir()
    # Batches and shards of 5 rows: the stalled task has more to write after its first shard.
    extra = ["--max-batch-size", "5", "--rows-per-shard", "5"]
    assert cli.main([*_embed_args(trained_model, few_digits, direct), *extra]) == 0
    flag = tmp_path / "first_shard"
    address, scheduler = _start_scheduler(logs)
    processes = [scheduler]
    try:
        stalling = _start_dask(
            logs, "stalling_worker", "worker", address, "--no-nanny", "--nthreads", "1",
            "--preload", str(STALL_PRELOAD), env={**os.environ, STALL_FLAG_ENV: str(flag)},
        )  # fmt: skip
        processes.append(stalling)
        _wait_for_workers(address, 1)
        job = subprocess.Popen(
            _embed_on_dask([*_embed_args(trained_model, few_digits, on_dask), *extra], address),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        processes.append(job)
        orphan = pathlib.Path(_wait_for_file(flag, job, JOB_TIMEOUT_S))
        assert orphan.exists() and orphan.is_relative_to(on_dask / "_staging")

        os.kill(stalling.pid, signal.SIGKILL)
        stalling.wait(timeout=20)
        processes.append(_start_dask(logs, "new_worker", "worker", address, "--nthreads", "1"))
        output, _ = job.communicate(timeout=JOB_TIMEOUT_S)
    finally:
        for process in reversed(processes):
            stop(process)

    assert job.returncode == 0, output[-3000:]
    ids, embeddings, clusters = _sorted_output(on_dask)
    ref_ids, ref_embeddings, ref_clusters = _sorted_output(direct)
    assert ids == ref_ids and len(set(ids)) == 10 * PER_CLASS
    assert embeddings.tobytes() == ref_embeddings.tobytes()
    assert clusters == ref_clusters
    record = json.loads((on_dask / "_manifest.json").read_text())
    assert (record["inputs_seen"], record["rows_written"]) == (10 * PER_CLASS, 10 * PER_CLASS)
    assert orphan.name not in {pathlib.Path(path).name for path in record["files"]}
    assert not list(on_dask.rglob(orphan.name)) and not (on_dask / "_staging").exists()
