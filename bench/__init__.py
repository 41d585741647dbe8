"""Benchmarks of embedbeam; each script writes bench/results/<name>.json."""

from __future__ import annotations

import json
import pathlib
from typing import Any

import numpy as np

RESULTS_DIR = pathlib.Path(__file__).parent / "results"


def record(name: str, results: dict[str, Any], directory: pathlib.Path = RESULTS_DIR) -> None:
    """Writes `results` to <directory>/<name>.json (bench/results/ by default) and prints them."""
    directory.mkdir(parents=True, exist_ok=True)
    text = json.dumps(results, indent=2)
    (directory / f"{name}.json").write_text(text + "\n")
    print(text)


def embed_labelled(model: pathlib.Path, source_flag: str, source: str, out: pathlib.Path):
    """Runs `embedbeam embed` (--input GLOB or --manifest FILE); returns (embeddings, labels)."""
    import pyarrow.dataset as ds

    from embedbeam.pipeline import cli
    from embedbeam.transforms.table.layout import vectors

    flags = ["--model", str(model), source_flag, source, "--output", str(out), "--overwrite"]
    assert cli.main(["embed", *flags]) == 0
    table = ds.dataset(out / "embeddings", partitioning="hive").to_table()
    return vectors(table.column("embedding")), np.asarray(table.column("label").to_pylist())
