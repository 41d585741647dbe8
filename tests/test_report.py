"""`embedbeam report`: a page that loads in real headless Chromium and shows the plot."""

from __future__ import annotations

import shutil

import pytest

from embedbeam.pipeline import cli
from tests.browser import visit

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def table_with_dead_letters(tmp_path_factory, trained_model, digit_folders):
    """Three digit classes plus a truncated PNG and an empty one: rows and dead letters."""
    inputs = tmp_path_factory.mktemp("report_inputs")
    for label in ("0", "1", "7"):
        shutil.copytree(digit_folders / "test" / label, inputs / label)
    good = sorted((inputs / "7").glob("*.png"))[0].read_bytes()
    (inputs / "7" / "truncated.png").write_bytes(good[: len(good) // 2])
    (inputs / "1" / "empty.png").write_bytes(b"")
    out = tmp_path_factory.mktemp("report") / "out"
    flags = ["--model", str(trained_model), "--input", f"{inputs}/*/*.png", "--output", str(out)]
    assert cli.main(["embed", *flags]) == 0
    return out


def test_the_page_loads_without_errors_and_shows_every_row(table_with_dead_letters, tmp_path):
    page = tmp_path / "report.html"
    assert (
        cli.main(["report", "--embeddings", str(table_with_dead_letters), "--output", str(page)])
        == 0
    )

    seen = visit(page, screenshot=tmp_path / "report.png")

    assert seen.console_errors == []
    assert seen.plots == {"scatter-image": 300}  # 100 test digits of each of 3 classes
    assert "undecodable_image" in seen.text  # the truncated PNG, among the dead-letter reasons
    assert "5-NN accuracy (leave-one-out)" in seen.text and "cluster purity" in seen.text
    assert "0 · query" in seen.text and "7 · query" in seen.text  # a neighbour row per label
    assert (tmp_path / "report.png").stat().st_size > 10_000
