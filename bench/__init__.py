"""Benchmarks of embedbeam; each script writes bench/results/<name>.json."""

from __future__ import annotations

import json
import pathlib
from typing import Any

import numpy as np

RESULTS_DIR = pathlib.Path(__file__).parent / "results"


def record(name: str, results: dict[str, Any]) -> None:
    """Writes `results` to bench/results/<name>.json and prints them."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    text = json.dumps(results, indent=2)
    (RESULTS_DIR / f"{name}.json").write_text(text + "\n")
    print(text)


def embed_labelled(model: pathlib.Path, source_flag: str, source: str, out: pathlib.Path):
    """Runs `embedbeam embed` (--input GLOB or --manifest FILE); returns (embeddings, labels)."""
    import pyarrow.dataset as ds

    from pipeline import cli
    from transforms.schemas import vectors

    flags = ["--model", str(model), source_flag, source, "--output", str(out), "--overwrite"]
    assert cli.main(["embed", *flags]) == 0
    table = ds.dataset(out / "embeddings", partitioning="hive").to_table()
    return vectors(table.column("embedding")), np.asarray(table.column("label").to_pylist())
