"""`python -m bench.million_inputs`: `embedbeam embed` of a Parquet manifest of Debian
package id lists at several sizes (100k and 1M rows by default) with the demo's ids model:
every input accounted for, the peak RSS of every process, wall time against size.

The manifest of N rows repeats this machine's package index (examples/debian_packages.py,
the 10 largest sections) under new ids (`name`, then `name~1`, `name~2`, ...), written in
row groups of 65,536 rows. The model is trained once on the index itself
(`embedbeam train --modality ids`). Each size runs as a fresh `embedbeam embed` process
(in-process DirectRunner, the default), sampled every 50 ms: the peak RSS of each process
of its tree (the launcher and any featurizing child) and its CPU seconds, sizes
interleaved over `--repeats`. (Launch time: bench/launch_time.py.)

    python -m bench.million_inputs [--sizes 100000 1000000] [--repeats 1]
        [--image-model MODEL --image-glob 100000=GLOB --image-glob 1000000=GLOB]
        [--workdir bench/work/million] [--name million_inputs]

Writes bench/results/<name>.json; bench/README.md quotes it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import pathlib
import shutil
import statistics
import subprocess
import sys
import time

import psutil
import pyarrow as pa
import pyarrow.parquet as pq

from bench import record
from bench.run import machine

BIN = pathlib.Path(sys.executable).parent
ROW_GROUP_ROWS = 65_536


def package_manifest(workdir: pathlib.Path) -> pathlib.Path:
    """The machine's package index as a manifest (the 10 largest sections), made once."""
    from examples.debian_packages import dumpavail, parse_packages, top_sections, write_manifest

    path = workdir / "packages.parquet"
    if not path.exists():
        write_manifest(str(path), top_sections(list(parse_packages(dumpavail())), 10))
    return path


def sized_manifest(packages: pathlib.Path, rows: int) -> pathlib.Path:
    """`rows` rows: the index again and again, each copy under new ids."""
    path = packages.with_name(f"packages-{rows}.parquet")
    if path.exists():
        return path
    index = pq.read_table(packages)
    names = index.column("id").to_pylist()
    temporary = path.with_suffix(".tmp")
    with pq.ParquetWriter(temporary, index.schema) as writer:
        written, copy = 0, 0
        while written < rows:
            part = index.slice(0, rows - written)
            ids = names[: part.num_rows] if not copy else [f"{n}~{copy}" for n in names]
            part = part.set_column(0, "id", pa.array(ids[: part.num_rows], pa.string()))
            writer.write_table(part, row_group_size=ROW_GROUP_ROWS)
            written, copy = written + part.num_rows, copy + 1
    temporary.rename(path)
    return path


def ids_model(workdir: pathlib.Path, packages: pathlib.Path) -> pathlib.Path:
    model = workdir / "model-ids"
    if not (model / "model.json").exists():
        command = [str(BIN / "embedbeam"), "train", "--modality", "ids", "--manifest"]
        subprocess.run([*command, str(packages), "--output", str(model)], check=True)
    return model


def measured_embed(model: pathlib.Path, source: list[str], out: pathlib.Path) -> dict:
    """One `embedbeam embed` of `source` (`--manifest FILE` or `--input GLOB`), its
    process tree sampled every 50 ms."""
    shutil.rmtree(out, ignore_errors=True)
    command = [str(BIN / "embedbeam"), "embed", "--model", str(model), *source]
    command += ["--output", str(out)]
    started = time.monotonic()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    root = psutil.Process(child.pid)
    peaks: dict[int, dict] = {}
    with contextlib.suppress(psutil.Error):
        while child.poll() is None:
            for process in [root, *root.children(recursive=True)]:
                with contextlib.suppress(psutil.Error), process.oneshot():
                    seen = peaks.setdefault(
                        process.pid, {"name": _role(process, root), "peak_rss_mb": 0.0}
                    )
                    rss = process.memory_info().rss / 2**20
                    seen["peak_rss_mb"] = max(seen["peak_rss_mb"], rss)
                    times = process.cpu_times()
                    seen["cpu_s"] = times.user + times.system
            time.sleep(0.05)
    _, stderr = child.communicate()
    wall = time.monotonic() - started
    if child.returncode != 0:
        raise RuntimeError(f"{command} failed: {stderr[-2000:]}")
    run = json.loads((out / "_manifest.json").read_text())
    return {
        "wall_s": round(wall, 2),
        "inputs_seen": run["inputs_seen"],
        "rows_written": run["rows_written"],
        "dead_letters": run["dead_letters"],
        "items_per_s": round(run["inputs_seen"] / wall, 1),
        "processes": [
            {**p, "peak_rss_mb": round(p["peak_rss_mb"]), "cpu_s": round(p.get("cpu_s", 0), 2)}
            for p in peaks.values()
        ],
    }


def _role(process: psutil.Process, root: psutil.Process) -> str:
    return "launcher" if process.pid == root.pid else " ".join(process.cmdline()[-2:])[-60:]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--image-model", help="An MNIST model, for --image-glob.")
    parser.add_argument(
        "--image-glob",
        action="append",
        default=[],
        help="NAME=GLOB of image files to embed too (e.g. 1000000=linked-1000000/*/*.png, "
        "from bench.launch_time's hard links).",
    )
    parser.add_argument("--workdir", type=pathlib.Path, default=pathlib.Path("bench/work/million"))
    parser.add_argument("--name", default="million_inputs", help="Results file: results/NAME.json.")
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)

    packages = package_manifest(args.workdir)
    model = ids_model(args.workdir, packages)
    jobs = {
        f"manifest-{size}": (model, ["--manifest", str(sized_manifest(packages, size))])
        for size in args.sizes
    }
    for spec in args.image_glob:
        name, glob = spec.split("=", 1)
        jobs[f"images-{name}"] = (pathlib.Path(args.image_model), ["--input", glob])
    results = {"date": time.strftime("%Y-%m-%dT%H:%M:%S"), "machine": machine(), "sizes": {}}
    runs: dict[str, list[dict]] = {name: [] for name in jobs}
    for repeat in range(args.repeats):
        for name, (job_model, source) in jobs.items():
            runs[name].append(measured_embed(job_model, source, args.workdir / "out"))
            print(f"run {repeat + 1} {name}: {runs[name][-1]}", file=sys.stderr)
    for size, measured in runs.items():
        results["sizes"][size] = {
            "wall_s_median": statistics.median(r["wall_s"] for r in measured),
            "peak_rss_mb_max_process": max(
                p["peak_rss_mb"] for r in measured for p in r["processes"]
            ),
            "runs": measured,
        }
    record(args.name, results)


if __name__ == "__main__":
    main()
