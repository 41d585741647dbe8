"""A Dask worker preload (`dask worker --preload tests/stall_after_first_shard.py`) for
tests/test_dask_cluster.py: the worker writes one whole Parquet shard, names it in the
file that STALL_FLAG_ENV names, then stalls in that task, so that a test kills the worker
while the shard is staged and its task unfinished, at the same point on every run."""

from __future__ import annotations

import functools
import os
import pathlib
import time

from embedbeam.transforms import write_shards

STALL_FLAG_ENV = "EMBEDBEAM_TEST_STALL_FLAG"


def _write_then_stall(write, *args, **kwargs) -> str:
    path = write(*args, **kwargs)
    flag = pathlib.Path(os.environ[STALL_FLAG_ENV])
    flag.with_suffix(".tmp").write_text(path)
    flag.with_suffix(".tmp").rename(flag)  # whole, or not there
    while True:
        time.sleep(1)


def dask_setup(worker) -> None:
    """Called by the worker that preloads this module (only there: importing it patches nothing)."""
    write_shards.write_shard_batches = functools.partial(
        _write_then_stall, write_shards.write_shard_batches
    )
