"""`python -m bench.dask_scaling`: `embedbeam embed` on a dask.distributed cluster of one
worker against one of two, the same inputs, runs interleaved, and where the time goes.

Two clusters run side by side, each a `dask scheduler` and `dask worker --nworkers N
--nthreads 1` started as processes of their own; the job runs as the `embedbeam`
command (`--runner=DaskRunner`). After a warm-up run on each (the workers import
TensorFlow and load the model), runs alternate between them. For every run:

- wall seconds of the command and items/s;
- peak RSS and CPU seconds of each process (launcher, scheduler, each worker);
- from the scheduler's task stream, the seconds each worker spent computing tasks and
  moving data, and the longest task;
- from Dask's statistical profiler (`Client.profile`), the worker seconds spent in each
  embedbeam stage: the outermost `transforms/` module on the sampled stack (anything
  else, Beam's DoFn invoker and Dask's bag plumbing outside a stage, is `runner`).

    python -m bench.dask_scaling --model MODEL --input 'mnist-100000/*/*.png' \
        [--workdir bench/work/dask] [--repeats 2] [--name dask_scaling]

Writes bench/results/<name>.json; bench/README.md quotes it.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import pathlib
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import dask
import distributed
import psutil

from bench import record
from bench.run import machine

BIN = pathlib.Path(sys.executable).parent
TRANSFORMS = pathlib.Path(__file__).resolve().parent.parent / "transforms"


@contextlib.contextmanager
def cluster(workers: int, logs: pathlib.Path) -> Iterator[tuple[str, subprocess.Popen]]:
    """A scheduler and `workers` single-threaded workers: (address, scheduler process)."""
    from tests.processes import free_port, stop

    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    logs.mkdir(parents=True, exist_ok=True)
    processes = []
    try:
        for name, command in [
            ("scheduler", ["scheduler", "--host", "127.0.0.1", "--port", str(port)]),
            ("workers", ["worker", address, "--nworkers", str(workers), "--nthreads", "1"]),
        ]:
            log = (logs / f"{name}-{workers}.log").open("w")
            processes.append(
                subprocess.Popen(
                    [str(BIN / "dask"), *command, "--no-dashboard"],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=logs,
                )
            )
        with distributed.Client(address, timeout=120) as client:
            client.wait_for_workers(workers, timeout=120)
            client.get_task_stream()  # the scheduler keeps a task stream from now on
        yield address, processes[0]
    finally:
        for process in reversed(processes):
            stop(process)


class ProcessSampler(threading.Thread):
    """Peak RSS and last CPU seconds of each named process, sampled every 50 ms."""

    def __init__(self, roles: dict[str, psutil.Process]) -> None:
        super().__init__(daemon=True)
        self._roles = roles
        self.peak_rss_mb: dict[str, float] = collections.defaultdict(float)
        self.cpu_s: dict[str, float] = {}
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            for role, process in list(self._roles.items()):
                with contextlib.suppress(psutil.Error):
                    tree = [process, *process.children(recursive=True)]
                    rss, cpu = 0, 0.0
                    for member in tree:
                        with contextlib.suppress(psutil.Error), member.oneshot():
                            rss += member.memory_info().rss
                            times = member.cpu_times()
                            cpu += times.user + times.system
                    self.peak_rss_mb[role] = max(self.peak_rss_mb[role], rss / 2**20)
                    self.cpu_s[role] = cpu
            time.sleep(0.05)

    def stop(self) -> None:
        self._done.set()
        self.join()


def worker_processes(address: str) -> dict[str, psutil.Process]:
    with distributed.Client(address, timeout=60) as client:
        pids = client.run(lambda: __import__("os").getpid())
    return {
        f"worker {index}": psutil.Process(pid)
        for index, (_, pid) in enumerate(sorted(pids.items()))
    }


def one_run(
    address: str, scheduler: subprocess.Popen, model: str, source: str, out: pathlib.Path
) -> dict:
    """One `embedbeam embed` on the cluster at `address`, measured."""
    shutil.rmtree(out, ignore_errors=True)
    command = [
        str(BIN / "embedbeam"), "embed", "--model", model, "--input", source,
        "--output", str(out), "--runner=DaskRunner", f"--dask_client_address={address}",
    ]  # fmt: skip
    roles = {"scheduler": psutil.Process(scheduler.pid), **worker_processes(address)}
    cpu_before = {role: sum(p.cpu_times()[:2]) for role, p in roles.items()}
    started = time.time()
    launcher = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    roles["launcher"] = psutil.Process(launcher.pid)
    sampler = ProcessSampler(roles)
    sampler.start()
    _, stderr = launcher.communicate()
    wall = time.time() - started
    sampler.stop()
    if launcher.returncode != 0:
        raise RuntimeError(f"{command} failed: {stderr.decode()[-2000:]}")
    with distributed.Client(address, timeout=60) as client:
        stream = client.get_task_stream(start=started)
        profile = client.profile(start=started)
    items = _rows_committed(out)
    return {
        "wall_s": round(wall, 2),
        "items": items,
        "items_per_s": round(items / wall, 1),
        "peak_rss_mb": {role: round(mb) for role, mb in sorted(sampler.peak_rss_mb.items())},
        "cpu_s": {
            role: round(cpu - cpu_before.get(role, 0.0), 2)
            for role, cpu in sorted(sampler.cpu_s.items())
        },
        "tasks": task_stream_summary(stream, started, started + wall),
        "worker_s_by_stage": stage_seconds(profile),
    }


def _rows_committed(out: pathlib.Path) -> int:
    import json

    return json.loads((out / "_manifest.json").read_text())["rows_written"]


def task_stream_summary(stream: list[dict], started: float, ended: float) -> dict:
    """Per worker: seconds computing, seconds moving data, tasks; the longest task; the
    seconds from the command's start to the first task (launch) and from the last task
    to the command's end (the launcher's wait for the result, its exit)."""
    by_worker: dict[str, dict[str, float]] = collections.defaultdict(
        lambda: {"compute_s": 0.0, "transfer_s": 0.0, "tasks": 0}
    )
    longest, first, last = 0.0, ended, started
    for task in stream:
        worker = by_worker[task["worker"]]
        worker["tasks"] += 1
        for span in task["startstops"]:
            seconds = span["stop"] - span["start"]
            first, last = min(first, span["start"]), max(last, span["stop"])
            kind = "compute_s" if span["action"] == "compute" else "transfer_s"
            worker[kind] += seconds
            if span["action"] == "compute":
                longest = max(longest, seconds)
    return {
        "workers": [
            {key: round(value, 2) for key, value in counts.items()}
            for _, counts in sorted(by_worker.items())
        ],
        "longest_task_s": round(longest, 2),
        "launch_s": round(first - started, 2),
        "on_cluster_s": round(last - first, 2),
        "after_last_task_s": round(ended - last, 2),
    }


def stage_seconds(profile: dict) -> dict[str, float]:
    """Worker seconds by embedbeam stage: each sample goes to the outermost frame of a
    `transforms/` module on its stack (`runner` if none)."""
    interval = dask.utils.parse_timedelta(
        dask.config.get("distributed.worker.profile.interval"), default="ms"
    )
    counts: dict[str, int] = collections.Counter()

    def walk(node: dict) -> None:
        stage = _stage_of(node["description"]["filename"])
        if stage is not None:
            counts[stage] += node["count"]
            return
        below = sum(child["count"] for child in node["children"].values())
        counts["runner"] += node["count"] - below  # samples that stopped in this frame
        for child in node["children"].values():
            walk(child)

    for child in profile.get("children", {}).values():
        walk(child)
    return {stage: round(count * interval, 2) for stage, count in counts.most_common()}


def _stage_of(filename: str) -> str | None:
    path = pathlib.Path(filename)
    if not path.is_relative_to(TRANSFORMS):
        return None
    relative = path.relative_to(TRANSFORMS)
    return str(relative.parent if relative.parent.name else relative.with_suffix(""))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="A trained model directory.")
    parser.add_argument("--input", required=True, help="The glob to embed.")
    parser.add_argument("--workdir", type=pathlib.Path, default=pathlib.Path("bench/work/dask"))
    parser.add_argument("--repeats", type=int, default=2, help="Measured runs per cluster.")
    parser.add_argument("--name", default="dask_scaling", help="Results file: results/NAME.json.")
    args = parser.parse_args(argv)

    results = {"date": time.strftime("%Y-%m-%dT%H:%M:%S"), "machine": machine(), "runs": {}}
    with (
        cluster(1, args.workdir / "logs") as (one, one_scheduler),
        cluster(2, args.workdir / "logs") as (two, two_scheduler),
    ):
        clusters = {"1 worker": (one, one_scheduler), "2 workers": (two, two_scheduler)}
        for name, (address, scheduler) in clusters.items():
            out = args.workdir / "out"
            results["runs"][name] = {
                "first": one_run(address, scheduler, args.model, args.input, out),
                "measured": [],
            }
        for repeat in range(args.repeats):
            for name, (address, scheduler) in clusters.items():
                run = one_run(address, scheduler, args.model, args.input, args.workdir / "out")
                results["runs"][name]["measured"].append(run)
                print(f"run {repeat + 1} {name}: {run['wall_s']} s", file=sys.stderr)
    rates = {
        name: statistics.median(run["items_per_s"] for run in runs["measured"])
        for name, runs in results["runs"].items()
    }
    results["items_per_s_median"] = rates
    results["two_over_one"] = round(rates["2 workers"] / rates["1 worker"], 3)
    record(args.name, results)


if __name__ == "__main__":
    main()
