"""Progress: a line rewritten in place on a terminal, periodic log lines elsewhere."""

from __future__ import annotations

import io
import logging

import pytest

from embedbeam.pipeline import cli
from embedbeam.transforms.common.progress import Progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_on_a_terminal_one_line_is_redrawn_with_rate_and_eta():
    terminal, clock = _Terminal(), _Clock()
    progress = Progress("embed", total=10_000, stream=terminal, clock=clock)

    clock.now += 2.0
    progress.add(4_000)  # 2,000/s, 6,000 left: 3 s
    clock.now += 3.0
    progress.add(6_000)

    first, second = terminal.getvalue().split("\r\x1b[K")[1:]
    assert first == "embed: 4,000/10,000 inputs (40%), 2,000 inputs/s, ETA 0:03"
    assert second == "embed: 10,000/10,000 inputs (100%), 2,000 inputs/s, ETA 0:00\n"


def test_off_a_terminal_it_logs_every_interval(caplog):
    clock = _Clock()
    progress = Progress("embed", stream=io.StringIO(), interval_s=30, clock=clock)

    with caplog.at_level(logging.INFO, logger="embedbeam.transforms.common.progress"):
        for _ in range(6):
            clock.now += 10.0
            progress.add(500)

    assert [record.getMessage() for record in caplog.records] == [
        "embed: 1,500 inputs, 50 inputs/s",
        "embed: 3,000 inputs, 50 inputs/s",
    ]


def test_slow_items_show_seconds_per_item():
    clock = _Clock()
    progress = Progress("tune-dim", total=5, stream=io.StringIO(), clock=clock, unit="widths")

    clock.now += 80.0
    progress.add(2)

    assert progress.line() == "tune-dim: 2/5 widths (40%), 40 s per width, ETA 2:00"


@pytest.mark.slow
def test_an_embed_job_reports_its_progress_with_the_total(
    trained_model, digit_folders, tmp_path, caplog
):
    flags = ["--model", str(trained_model), "--input", f"{digit_folders}/test/[38]/*.png"]

    with caplog.at_level(logging.INFO, logger="embedbeam.transforms.common.progress"):
        assert cli.main(["embed", *flags, "--output", str(tmp_path / "out")]) == 0

    assert "embed: 200/200 inputs (100%)" in caplog.text  # in-process: the launcher knows the total
