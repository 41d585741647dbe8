"""Runners embedbeam brings with it, and the short names that select them.

`--runner=DaskRunner` (Beam 2.77 knows no such short name) and Beam's own
`apache_beam.runners.dask.dask_runner.DaskRunner` both select
`embedbeam.pipeline.runners.dask_runner.DaskRunner`, Beam's runner with each output
of a ParDo kept apart (deploy/dask/README.md). Plain string work: nothing here
imports Beam or Dask.
"""

from __future__ import annotations

DASK_RUNNER = "embedbeam.pipeline.runners.dask_runner.DaskRunner"

_RUNNERS = {
    "dask": DASK_RUNNER,
    "daskrunner": DASK_RUNNER,
    "apache_beam.runners.dask.dask_runner.daskrunner": DASK_RUNNER,
}


def resolve_runner(name: str) -> str:
    """The runner Beam is given for `--runner=name`: ours where we have one."""
    return _RUNNERS.get(name.lower(), name)


def with_runners_resolved(args: list[str]) -> list[str]:
    """`args` with `--runner=NAME` (or `--runner NAME`) naming our runner where we have one."""
    resolved = list(args)
    for i, arg in enumerate(resolved):
        if arg.startswith("--runner="):
            resolved[i] = "--runner=" + resolve_runner(arg.removeprefix("--runner="))
        elif arg == "--runner" and i + 1 < len(resolved):
            resolved[i + 1] = resolve_runner(resolved[i + 1])
    return resolved
