"""`embedbeam tune-dim`: one analysis, a fit per width, a table, a plot and a pick."""

from __future__ import annotations

import csv

import pytest
from PIL import Image

from embedbeam.pipeline import cli
from embedbeam.pipeline.jobs.tune_dim import WidthResult, default_dims, pick

pytestmark = pytest.mark.slow


def test_default_widths_surround_the_fourth_root_rule():
    assert default_dims(500_000) == [17, 22, 27, 32, 37]  # 500k ** 0.25 = 26.6; DESIGN: 15-35
    assert default_dims(28 * 28) == [3, 4, 5, 6, 7]


def test_the_pick_is_the_smallest_width_as_good_as_the_best():
    results = [
        WidthResult(dim, 0.9, knn, parameters=dim * 100, fit_seconds=1.0)
        for dim, knn in [(2, 0.80), (4, 0.912), (8, 0.915), (16, 0.90)]
    ]

    assert pick(results).dim == 4  # within 0.005 of d=8's 0.915, and half its size


def test_tune_dim_measures_each_width_on_real_digits(digit_folders, tmp_path, capsys, caplog):
    out = tmp_path / "tuning"

    status = cli.main(
        ["tune-dim", "--input", f"{digit_folders}/train/*/*.png", "--output", str(out),
         "--dims", "2:6:4", "--epochs", "3", "--seed", "0"]
    )  # fmt: skip

    printed = capsys.readouterr()
    assert status == 0
    rows = list(csv.DictReader((out / "tune_dim.csv").open()))
    assert [int(row["dim"]) for row in rows] == [2, 6]
    assert all(0.6 < float(row["validation_knn5_accuracy"]) <= 1.0 for row in rows)
    assert int(rows[1]["parameters"]) > int(rows[0]["parameters"])  # wider bottleneck
    assert [row["picked"] for row in rows].count("True") == 1
    assert "picked d=" in printed.out and "| 2 |" in printed.out
    assert "tune-dim: 2/2 widths (100%)" in caplog.text  # progress, not a TTY: log lines
    assert Image.open(out / "tune_dim.png").size == (600, 400)
    assert not list(out.glob("analysis*"))  # the analysis is cleaned up


def test_embedding_dim_is_refused_with_one_line(digit_folders, tmp_path, capsys):
    status = cli.main(
        ["tune-dim", "--input", f"{digit_folders}/train/*/*.png", "--output", str(tmp_path),
         "--embedding-dim", "8"]
    )  # fmt: skip

    error = capsys.readouterr().err.strip()
    assert status == 2 and "\n" not in error and "give --dims, not --embedding-dim" in error
