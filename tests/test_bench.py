"""A smoke run of the benchmark harness (`python -m bench`) at a tiny size: it must not rot.

Not a timed test: it checks that every variant runs end to end and that the
results file holds what bench/README.md quotes, not how fast anything was.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pyarrow.dataset as ds
import pytest

pytestmark = pytest.mark.slow


def test_the_harness_times_each_variant_on_the_same_inputs(trained_model, tmp_path):
    variants = ["plain loop", "embedbeam in-process", "Beam RunInference (stock TF handler)"]
    command = [sys.executable, "-m", "bench", "--sizes", "24", "--repeats", "1"]
    command += ["--image-model", str(trained_model), "--workdir", str(tmp_path / "work")]
    command += ["--results-dir", str(tmp_path), "--name", "smoke", "--variants", *variants]

    subprocess.run(command, check=True, capture_output=True, timeout=600)

    results = json.loads((tmp_path / "smoke.json").read_text())
    measured = results["sets"]["image-24"]
    assert results["machine"]["cpus"] >= 1 and results["repeats"] == 1
    assert sorted(measured["variants"]) == sorted(variants)
    for variant in measured["variants"].values():
        assert variant["items"] == 24
        assert variant["items_per_s"] > 0 and variant["peak_rss_tree_mb"] > 0
    assert measured["variants"]["plain loop"]["ratio_to_plain_loop"] == 1.0
    assert measured["model_only"]["rows"] == 24
    assert measured["variants"]["embedbeam in-process"]["model_stage_rows_per_s"] > 0
    # The last run's output is a table in the output contract's schema.
    table = ds.dataset(tmp_path / "work" / "bench-out").to_table()
    assert table.num_rows == 24 and "embedding" in table.column_names
