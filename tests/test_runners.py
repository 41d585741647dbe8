"""The same jobs on other Beam runners: only Beam flags change, and the output does not.

Each runner trains and embeds a small set of real digits; the reference is the
in-process DirectRunner. Models are compared by their weights and centroids
(`saved_model.pb` itself is not byte-stable: TensorFlow names its traced
functions per process), outputs by embeddings and cluster ids sorted by id.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import subprocess
import sys
import time
from collections.abc import Iterator

import numpy as np
import psutil
import pyarrow.dataset as ds
import pytest

from embedbeam.pipeline import cli
from embedbeam.pipeline.model.model_dir import read_model_info
from examples.digits import write_image_folder
from tests.processes import free_port, stop, wait_for_port

TRAIN_PER_CLASS, EMBED_PER_CLASS = 20, 5
MULTI_PROCESSING = ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]
# Beam's own DaskRunner, by its class: `embedbeam` maps this name (and DaskRunner) to ours.
BEAM_DASK_RUNNER = "--runner=apache_beam.runners.dask.dask_runner.DaskRunner"


@pytest.fixture(scope="module")
def small_digits(tmp_path_factory, digits) -> pathlib.Path:
    """`train/` 200 and `embed/` 50 real digits, disjoint, every class present."""
    images, labels = digits
    root = tmp_path_factory.mktemp("runner_digits")
    for label in range(10):
        members = np.flatnonzero(labels == label)
        train = members[:TRAIN_PER_CLASS]
        embed = members[TRAIN_PER_CLASS : TRAIN_PER_CLASS + EMBED_PER_CLASS]
        write_image_folder(images[train], labels[train], root / "train", iter(train))
        write_image_folder(images[embed], labels[embed], root / "embed", iter(embed))
    return root


def _train(inputs: pathlib.Path, model: pathlib.Path, *beam_flags: str) -> int:
    return cli.main(
        ["train", "--input", f"{inputs}/train/*/*.png", "--output", str(model), "--epochs", "1"]
        + list(beam_flags)
    )


def _embed_args(inputs: pathlib.Path, model: pathlib.Path, out: pathlib.Path) -> list[str]:
    return ["embed", "--model", str(model), "--input", f"{inputs}/embed/**", "--output", str(out)]


@pytest.fixture(scope="module")
def direct_run(small_digits, tmp_path_factory) -> tuple[pathlib.Path, pathlib.Path]:
    """(model, output) of the in-process DirectRunner: what every other runner must match."""
    root = tmp_path_factory.mktemp("direct")
    assert _train(small_digits, root / "model") == 0
    assert cli.main(_embed_args(small_digits, root / "model", root / "out")) == 0
    return root / "model", root / "out"


def _sorted_output(out: pathlib.Path) -> tuple[list[str], np.ndarray, list[int]]:
    """(ids, embeddings, cluster ids) of a committed output, sorted by id."""
    table = ds.dataset(out / "embeddings", format="parquet", partitioning="hive").to_table()
    table = table.sort_by("id")
    column = table.column("embedding").combine_chunks()
    embeddings = column.values.to_numpy().reshape(len(table), column.type.list_size)
    return table.column("id").to_pylist(), embeddings, table.column("cluster_id").to_pylist()


def _assert_same_output(out: pathlib.Path, reference: pathlib.Path) -> None:
    ids, embeddings, clusters = _sorted_output(out)
    ref_ids, ref_embeddings, ref_clusters = _sorted_output(reference)
    assert (out / "_SUCCESS").exists()
    assert ids == ref_ids and len(ids) == 10 * EMBED_PER_CLASS
    assert embeddings.tobytes() == ref_embeddings.tobytes()
    assert clusters == ref_clusters


def _assert_same_model(model: pathlib.Path, reference: pathlib.Path) -> None:
    """Same weights, centroids and metrics (wall time aside)."""
    weights = sorted(p.relative_to(model) for p in (model / "variables").iterdir())
    assert weights == sorted(p.relative_to(reference) for p in (reference / "variables").iterdir())
    for relative in [*weights, pathlib.Path("centroids.parquet")]:
        assert (model / relative).read_bytes() == (reference / relative).read_bytes(), relative
    metrics, ref_metrics = (read_model_info(str(m)).metrics for m in (model, reference))
    metrics.pop("wall_time_s"), ref_metrics.pop("wall_time_s")
    assert metrics == ref_metrics


@pytest.mark.slow
def test_direct_runner_multi_processing_matches_in_process(small_digits, direct_run, tmp_path):
    direct_model, direct_out = direct_run

    assert _train(small_digits, tmp_path / "model", *MULTI_PROCESSING) == 0
    assert (
        cli.main(
            [*_embed_args(small_digits, tmp_path / "model", tmp_path / "out"), *MULTI_PROCESSING]
        )
        == 0
    )

    _assert_same_model(tmp_path / "model", direct_model)
    _assert_same_output(tmp_path / "out", direct_out)


# --- Portable runner: a job service plus an external pool of SDK worker processes ---


@pytest.fixture(scope="module")
def worker_pool(tmp_path_factory) -> Iterator[tuple[list[str], subprocess.Popen]]:
    """An SDK worker pool and a local job service on loopback: (the Beam flags, the pool).

    The pool starts each SDK worker with the `python` found on PATH, so this
    venv's bin goes first (DESIGN.md). Beam 2.77's PortableRunner does not
    start a job service itself (no --job_endpoint: NotImplementedError), so
    one runs here as Flink's or Spark's job server would.
    """
    logs = tmp_path_factory.mktemp("portable_logs")
    env = {
        **os.environ,
        "PATH": os.pathsep.join([os.path.dirname(sys.executable), os.environ["PATH"]]),
    }
    pool_port, job_port = free_port(), free_port()

    def start(name: str, module: str, port_flag: str) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", module, port_flag],
            env=env,
            stdout=(logs / f"{name}.log").open("wb"),
            stderr=subprocess.STDOUT,
        )

    pool = start(
        "pool", "apache_beam.runners.worker.worker_pool_main", f"--service_port={pool_port}"
    )
    job_service = start(
        "job_service",
        "apache_beam.runners.portability.local_job_service_main",
        f"--port={job_port}",
    )
    try:
        wait_for_port(pool_port, pool)
        wait_for_port(job_port, job_service)
        flags = [
            "--runner=PortableRunner",
            f"--job_endpoint=localhost:{job_port}",
            "--environment_type=EXTERNAL",
            f"--environment_config=localhost:{pool_port}",
        ]
        yield flags, pool
    finally:
        stop(job_service)
        stop(pool)


@pytest.mark.slow
def test_portable_runner_with_external_workers_matches_direct_runner(
    small_digits, direct_run, worker_pool, tmp_path
):
    direct_model, direct_out = direct_run
    flags, pool = worker_pool

    assert _train(small_digits, tmp_path / "model", *flags) == 0
    assert cli.main([*_embed_args(small_digits, tmp_path / "model", tmp_path / "out"), *flags]) == 0

    _assert_same_model(tmp_path / "model", direct_model)
    _assert_same_output(tmp_path / "out", direct_out)
    assert pool.poll() is None  # the work ran in the pool's workers, which outlive the jobs


@pytest.mark.slow
def test_killing_the_sdk_worker_fails_the_job_loudly_and_a_rerun_completes(
    small_digits, direct_run, worker_pool, tmp_path
):
    """The local job service has one SDK worker and does not retry a lost one: the job
    fails with an error, commits nothing, and the same command run again completes."""
    direct_model, direct_out = direct_run
    flags, pool = worker_pool
    command = [
        sys.executable,
        "-m",
        "embedbeam.pipeline.cli.command",
        *_embed_args(small_digits, direct_model, tmp_path / "out"),
        *flags,
    ]
    before = {child.pid for child in psutil.Process(pool.pid).children()}

    job = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    worker = _wait_for_working_sdk_worker(pool, before, job)
    time.sleep(1)
    assert job.poll() is None, "the job ended before its worker could be killed"
    worker.kill()
    output, _ = job.communicate(timeout=300)

    assert job.returncode != 0
    assert "failed in state FAILED" in output  # PortableRunner.s error, on the console
    assert not (tmp_path / "out" / "_SUCCESS").exists()
    assert not (tmp_path / "out" / "embeddings").exists()

    rerun = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    _assert_same_output(tmp_path / "out", direct_out)
    assert not (tmp_path / "out" / "_staging").exists()  # the failed run's debris is gone


def _wait_for_working_sdk_worker(
    pool: subprocess.Popen, before: set[int], job: subprocess.Popen, timeout: float = 180
) -> psutil.Process:
    """The SDK worker the pool starts for `job`, once it is connected and working.

    Connected means its control, data and state channels to the job service are
    up. A worker killed earlier, while still importing, is never noticed: the
    local job service then waits for its data forever (seen once here: "Detected
    input queue delay longer than 300 seconds", no failure), so the test kills
    a worker that has started work, which is what a crash mid-job is.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert job.poll() is None, job.communicate()[0][-2000:]
        for child in psutil.Process(pool.pid).children():
            if child.pid in before:
                continue
            with contextlib.suppress(psutil.Error):
                connected = [c for c in child.net_connections("tcp") if c.status == "ESTABLISHED"]
                if len(connected) >= 3:
                    return child
        time.sleep(0.1)
    raise TimeoutError("the pool started no working SDK worker")


# --- Dask: against a distributed LocalCluster of 2 worker processes. Beam's own
# DaskRunner mixes up a ParDo's outputs; `embedbeam` runs jobs on ours
# (pipeline/runners/dask_runner.py, tests/test_dask_runner.py; a cluster of separate
# processes in tests/test_dask_cluster.py) ---


@pytest.fixture(scope="module")
def dask_cluster() -> Iterator[str]:
    """A LocalCluster of 2 single-threaded worker processes: its scheduler address."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        yield cluster.scheduler_address


def _run_on_beams_dask_runner(build, address: str) -> list:
    """Runs the pipeline `build(p)` fills on Beam's DaskRunner; the elements of its last
    transform."""
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    options = PipelineOptions([BEAM_DASK_RUNNER, f"--dask_client_address={address}"])
    pipeline = beam.Pipeline(options=options)
    build(pipeline)
    result = pipeline.run()
    try:
        result.wait_until_finish()
        return [
            element for partition in result.client.gather(result.futures) for element in partition
        ]
    finally:
        result.client.close()


def _split_odd(number: int):
    import apache_beam as beam

    yield beam.pvalue.TaggedOutput("odd", number) if number % 2 else number


@pytest.mark.slow
def test_beams_dask_runner_runs_single_output_stages(dask_cluster):
    """Create, Map, GroupByKey: what Beam 2.77's DaskRunner translates, across 2 workers."""
    import apache_beam as beam

    def build(p):
        _ = (
            p
            | beam.Create(range(10))
            | "KeyByParity" >> beam.Map(lambda n: (n % 2, n))
            | beam.GroupByKey()
            | "SortGroup" >> beam.MapTuple(lambda key, values: (key, sorted(values)))
        )

    assert sorted(_run_on_beams_dask_runner(build, dask_cluster)) == [
        (0, [0, 2, 4, 6, 8]),
        (1, [1, 3, 5, 7, 9]),
    ]


@pytest.mark.slow
def test_beams_dask_runner_still_mixes_up_the_outputs_of_a_multi_output_pardo(dask_cluster):
    """Why embedbeam brings its own DaskRunner: Beam 2.77's does not keep a ParDo's tagged
    outputs apart; every consumer of any output gets all of them. When this fails, a Beam
    release has fixed it, and pipeline/runners/dask_runner.py can go."""
    import apache_beam as beam

    def build(p):
        parts = (
            p
            | beam.Create([1, 2, 3, 4])
            | beam.FlatMap(_split_odd).with_outputs("odd", main="even")
        )
        _ = parts.odd | "TagOdd" >> beam.Map(lambda n: ("odd", n))

    assert sorted(_run_on_beams_dask_runner(build, dask_cluster)) == [
        ("odd", 1),
        ("odd", 2),
        ("odd", 3),
        ("odd", 4),
    ]


@pytest.mark.slow
@pytest.mark.parametrize("runner", ["--runner=DaskRunner", BEAM_DASK_RUNNER])
def test_the_embed_job_on_dask_equals_the_direct_runner(
    small_digits, direct_run, dask_cluster, tmp_path, runner
):
    """Both names select embedbeam's DaskRunner; the table is the DirectRunner's."""
    direct_model, direct_out = direct_run
    out = tmp_path / "out"

    status = cli.main(
        [
            *_embed_args(small_digits, direct_model, out),
            runner,
            f"--dask_client_address={dask_cluster}",
        ]
    )

    assert status == 0
    _assert_same_output(out, direct_out)
