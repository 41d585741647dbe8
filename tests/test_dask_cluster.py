"""`embedbeam embed --runner=DaskRunner` on a dask.distributed cluster started as separate
processes (`dask scheduler`, `dask worker --nworkers 2`), as on a cluster: the table
equals the DirectRunner's row for row, with and without --recluster (side inputs).
The workers run from this venv, where embedbeam is installed, so they import it."""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import sys
from collections.abc import Iterator

import pytest

from embedbeam.pipeline import cli
from tests.processes import free_port, stop
from tests.test_runners import _sorted_output

distributed = pytest.importorskip("distributed")

PER_CLASS = 5
BIN = pathlib.Path(sys.executable).parent
START_TIMEOUT_S, JOB_TIMEOUT_S = 120, 600


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory) -> Iterator[str]:
    """A scheduler and 2 single-threaded workers, each its own process: the address."""
    logs = tmp_path_factory.mktemp("dask_logs")
    address = f"tcp://127.0.0.1:{free_port()}"
    port = address.rsplit(":", 1)[1]
    processes: list[subprocess.Popen] = []
    try:
        for name, command in [
            ("scheduler", ["scheduler", "--host", "127.0.0.1", "--port", port]),
            ("workers", ["worker", address, "--nworkers", "2", "--nthreads", "1"]),
        ]:
            log = (logs / f"{name}.log").open("w")
            processes.append(
                subprocess.Popen(
                    [str(BIN / "dask"), *command, "--no-dashboard"],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=logs,
                )
            )
        with distributed.Client(address, timeout=START_TIMEOUT_S) as client:
            client.wait_for_workers(2, timeout=START_TIMEOUT_S)
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
        [
            str(BIN / "embedbeam"),
            *_embed_args(trained_model, few_digits, on_dask),
            *extra,
            "--runner=DaskRunner",
            f"--dask_client_address={dask_cluster}",
        ],
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
