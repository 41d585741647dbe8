"""The console as a user meets it: help without TensorFlow or Beam, jobs that print
only embedbeam's own lines, and --verbose to see the libraries' logs again."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pyarrow.dataset as ds
import pytest

from embedbeam.pipeline import cli
from embedbeam.pipeline.cli import flags
from embedbeam.transforms.sparse.modalities import MODALITIES, Modality
from embedbeam.transforms.sparse.settings import Setting
from examples.digits import write_image_folder

EMBEDBEAM = str(pathlib.Path(sys.executable).parent / "embedbeam")
# Runs the CLI, then reports on the last stderr line which heavy libraries it imported.
PROBE = """
import json, sys
from embedbeam.pipeline.cli import main
try:
    status = main(sys.argv[1:])
except SystemExit as exit:
    status = exit.code
heavy = sorted({name.split(".")[0] for name in sys.modules} & {"tensorflow", "apache_beam"})
print(json.dumps({"status": status, "heavy": heavy}), file=sys.stderr)
"""
OUR_LOG_LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (INFO|WARNING|ERROR) embedbeam\.")
LIBRARY_NOISE = re.compile(
    r"^[IWEF]\d{4} \d\d:\d\d"  # absl / TensorFlow C++ log lines
    r"|absl::InitializeLog|oneDNN|cuInit|cuda|CUDA|TFXIO"
    r"|tensorflow|apache_beam|\babsl\b|\broot:|Warning:|WARNING:",
    re.MULTILINE,
)


def _as_a_user_runs_it() -> dict[str, str]:
    """This environment without what the tests (conftest, in-process runs) set."""
    return {
        name: value
        for name, value in os.environ.items()
        if name not in ("TF_CPP_MIN_LOG_LEVEL", "PYTHONWARNINGS")
    }


def _embedbeam(*args: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [EMBEDBEAM, *args], capture_output=True, text=True, env=_as_a_user_runs_it()
    )
    assert result.returncode == 0, result.stderr
    return result


def _probe(*args: str) -> tuple[subprocess.CompletedProcess, dict]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        capture_output=True,
        text=True,
        env=_as_a_user_runs_it(),
    )
    return result, json.loads(result.stderr.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "command", [[], ["train"], ["embed"], ["tune-dim"], ["similar"], ["projector"], ["report"]]
)
def test_help_imports_neither_tensorflow_nor_beam(command):
    result, report = _probe(*command, "--help")

    assert report == {"status": 0, "heavy": []}
    assert "--verbose" in result.stdout


@dataclasses.dataclass(frozen=True)
class TinyJobs:
    root: pathlib.Path
    train: subprocess.CompletedProcess
    embed: subprocess.CompletedProcess

    @property
    def glob(self) -> str:
        return f"{self.root}/digits/*/*.png"


@pytest.fixture(scope="module")
def tiny_jobs(tmp_path_factory, digits) -> TinyJobs:
    """50 real digits trained on (one epoch) and embedded by the installed command."""
    images, labels = digits
    root = tmp_path_factory.mktemp("console")
    first = np.concatenate([np.flatnonzero(labels == label)[:5] for label in range(10)])
    write_image_folder(images[first], labels[first], root / "digits", iter(first))
    glob = f"{root}/digits/*/*.png"
    model = str(root / "model")
    train = _embedbeam("train", "--input", glob, "--output", model, "--epochs", "1")
    embed = _embedbeam("embed", "--model", model, "--input", glob, "--output", str(root / "out"))
    return TinyJobs(root, train, embed)


@pytest.mark.slow
def test_a_job_prints_only_its_own_lines(tiny_jobs):
    for job, first_line in ((tiny_jobs.train, "model written to"), (tiny_jobs.embed, "embeddings")):
        assert job.stdout.startswith(first_line)
        assert [line for line in job.stderr.splitlines() if not OUR_LOG_LINE.match(line)] == []
        assert LIBRARY_NOISE.search(job.stdout + job.stderr) is None


@pytest.mark.slow
def test_verbose_brings_the_libraries_logs_back(tiny_jobs):
    out = str(tiny_jobs.root / "verbose")
    model = str(tiny_jobs.root / "model")

    job = _embedbeam(
        "embed", "--verbose", "--model", model, "--input", tiny_jobs.glob, "--output", out
    )

    assert job.stdout.startswith("embeddings written to")
    assert LIBRARY_NOISE.search(job.stderr), job.stderr


@pytest.mark.slow
def test_similar_by_id_imports_neither_tensorflow_nor_beam(tiny_jobs):
    out = tiny_jobs.root / "out"
    query = ds.dataset(out / "embeddings", partitioning="hive").to_table().column("id")[0].as_py()

    result, report = _probe("similar", "--embeddings", str(out), "--query", query, "-k", "3")

    # The table reader opens local tables without Beam's FileSystems (a second to import).
    assert report == {"status": 0, "heavy": []}
    assert len(result.stdout.strip().splitlines()) == 4  # header + 3 neighbours


def test_train_flags_come_from_the_modality_registry(monkeypatch):
    video = Modality(
        lambda data, fps: [],
        ("fps",),
        lambda settings: 1,
        flags=(Setting("fps", int, 8, "frames per second sampled from the clip."),),
    )
    monkeypatch.setattr(flags, "MODALITIES", {**MODALITIES, "video": video})
    parser = argparse.ArgumentParser()
    flags.add_train_args(parser)
    help_text = " ".join(parser.format_help().split())

    defaults = parser.parse_args([])
    assert (defaults.grid, defaults.threshold, defaults.top_k, defaults.bigrams) == (
        28,
        0.2,
        20_000,
        False,
    )
    assert parser.parse_args(["--fps", "12", "--threshold-db", "-50"]).fps == 12
    assert "--fps FPS Video: frames per second sampled from the clip." in help_text
    assert "--top-k TOP_K Text, ids: keep the top-k" in help_text  # one flag for both
    with pytest.raises(SystemExit):
        parser.parse_args(["--fps", "0"])  # an int setting is a count


def test_beam_parses_the_same_train_flags():
    from apache_beam.options.pipeline_options import PipelineOptions

    from embedbeam.pipeline.jobs.options import TrainOptions

    options = PipelineOptions(["--grid", "14", "--bigrams", "--runner", "DirectRunner"])

    train = options.view_as(TrainOptions)
    assert (train.grid, train.bigrams, train.threshold_db) == (14, True, -60.0)


def test_a_modality_must_declare_the_settings_it_records():
    with pytest.raises(ValueError, match="must declare the settings"):
        Modality(lambda data, fps: [], ("fps",), lambda settings: 1)


@pytest.mark.parametrize("position", ["before", "after"])
def test_verbose_goes_before_or_after_the_command(tmp_path, capsys, position):
    job = ["train", "--input", f"{tmp_path}/*.png", "--output", str(tmp_path / "m")]
    argv = ["--verbose", *job] if position == "before" else [*job, "--verbose"]

    status = cli.main(argv)

    assert status == 2
    assert "matches no files" in capsys.readouterr().err
