"""Benchmarks of embedbeam; each script writes bench/results/<name>.json."""

from __future__ import annotations

import json
import pathlib
from typing import Any

RESULTS_DIR = pathlib.Path(__file__).parent / "results"


def record(name: str, results: dict[str, Any]) -> None:
    """Writes `results` to bench/results/<name>.json and prints them."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    text = json.dumps(results, indent=2)
    (RESULTS_DIR / f"{name}.json").write_text(text + "\n")
    print(text)
