"""`python -m bench.launch_time`: how long `embedbeam embed` takes from the command's start
to its first input read, at 10k inputs against 1M, for a Parquet manifest and for a glob.

Each run is a fresh process (`python -m bench.launch_time --child ...`) that runs the
`embed` command in-process with one hook: the first time the job's progress counter of
inputs read and featurized moves (transforms/common/progress.py), it notes the seconds
since the process started (psutil's create time) and the CPU seconds of its process
tree (less noisy than wall time on a shared machine), and ends the process, so a run
costs the launch, not the job. Sizes run interleaved, `--repeats` times each; medians.

The glob's files are hard links to the 100k MNIST PNGs of `bench.run.image_set` (or
`--images`; 1M names, each image ten times), so that a million names cost no image data on disk.

    python -m bench.launch_time --model MODEL_IDS --image-model MODEL_IMAGE \\
        [--workdir bench/work/million] [--repeats 3] [--name launch_time]

Writes bench/results/<name>.json; bench/README.md quotes it.
"""

from __future__ import annotations

import argparse
import glob
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import time

import psutil

from bench import record
from bench.million_inputs import package_manifest, sized_manifest
from bench.run import image_set, machine

SIZES = (10_000, 1_000_000)
LINKS_PER_FOLDER = 10_000


def linked_images(workdir: pathlib.Path, images: str, size: int) -> str:
    """A glob of `size` PNG names, hard links to the files of `images`, 10,000 a folder."""
    folder = workdir / f"linked-{size}"
    marker = folder / ".complete"
    if not marker.exists():
        shutil.rmtree(folder, ignore_errors=True)
        sources = sorted(glob.glob(images))
        for index in range(size):
            target = folder / f"{index // LINKS_PER_FOLDER:03d}" / f"{index:07d}.png"
            if index % LINKS_PER_FOLDER == 0:
                target.parent.mkdir(parents=True)
            os.link(sources[index % len(sources)], target)
        marker.write_text(str(size))
    return f"{folder}/*/*.png"


def child(embed_args: list[str]) -> None:
    """Runs `embed` here; exits at the first input featurized, printing the launch seconds."""
    from embedbeam.pipeline import cli
    from embedbeam.transforms.common import progress

    started = psutil.Process().create_time()

    def first_add(self, count: int = 1) -> None:
        me = psutil.Process()
        cpu = sum(me.cpu_times()[:2]) + sum(
            sum(child.cpu_times()[:2]) for child in me.children(recursive=True)
        )
        print(f"{time.time() - started:.3f} {cpu:.3f}", flush=True)
        os._exit(0)

    progress.Progress.add = first_add
    cli.main(["embed", *embed_args])
    raise SystemExit("the job ended without reading an input")


def launch_seconds(embed_args: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the process tree) from start to the first input."""
    command = [sys.executable, "-m", "bench.launch_time", "--child", *embed_args]
    run = subprocess.run(command, capture_output=True, text=True, check=True)
    wall, cpu = run.stdout.strip().splitlines()[-1].split()
    return float(wall), float(cpu)


def main(argv: list[str] | None = None) -> None:
    if argv is None and sys.argv[1:2] == ["--child"]:
        child(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="An ids model (bench.million_inputs).")
    parser.add_argument("--image-model", required=True, help="An MNIST image model.")
    parser.add_argument("--workdir", type=pathlib.Path, default=pathlib.Path("bench/work/million"))
    parser.add_argument("--images", help="PNGs to link to (default: bench.run.image_set 100k).")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--name", default="launch_time", help="Results file: results/NAME.json.")
    args = parser.parse_args(argv)

    packages = package_manifest(args.workdir)
    images = args.images or image_set(args.workdir, 100_000)
    out = str(args.workdir / "launch-out")
    cases = {}
    for size in SIZES:
        manifest = sized_manifest(packages, size)
        cases[f"manifest-{size}"] = ["--model", args.model, "--manifest", str(manifest)]
        cases[f"glob-{size}"] = [
            "--model",
            args.image_model,
            "--input",
            linked_images(args.workdir, images, size),
        ]
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
    for _ in range(args.repeats):
        for name, embed_args in cases.items():
            shutil.rmtree(out, ignore_errors=True)
            runs[name].append(launch_seconds([*embed_args, "--output", out]))
            print(f"{name}: {runs[name][-1]} (wall s, CPU s)", file=sys.stderr)
    results = {"date": time.strftime("%Y-%m-%dT%H:%M:%S"), "machine": machine(), "runs": runs}
    for measure, index in (("wall_s", 0), ("cpu_s", 1)):
        medians = {name: statistics.median(run[index] for run in rs) for name, rs in runs.items()}
        results[f"{measure}_median"] = medians
        results[f"{measure}_1M_over_10k"] = {
            kind: round(medians[f"{kind}-{SIZES[1]}"] / medians[f"{kind}-{SIZES[0]}"], 3)
            for kind in ("manifest", "glob")
        }
    record(args.name, results)


if __name__ == "__main__":
    main()
