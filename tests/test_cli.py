"""The `embedbeam` command: help for every flag, one-line errors for user mistakes."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import apache_beam as beam
import pytest
from PIL import Image

from embedbeam.pipeline import cli
from tests.conftest import encode

# The console script installed beside this interpreter (the venv's bin/).
EMBEDBEAM = str(pathlib.Path(sys.executable).parent / "embedbeam")


@pytest.mark.parametrize(
    "command", [[], ["train"], ["embed"], ["tune-dim"], ["similar"], ["projector"], ["report"]]
)
def test_installed_command_explains_itself(command):
    result = subprocess.run(
        [EMBEDBEAM, *command, "--help"],
        capture_output=True,
        text=True,
        check=True,
    )

    if command in ([], ["train"], ["embed"], ["tune-dim"]):  # the Beam jobs
        assert "Beam pipeline flags" in result.stdout
    else:
        assert "--embeddings" in result.stdout and "committed" in result.stdout
    if command == ["tune-dim"]:
        assert "--dims" in result.stdout and "START:STOP:STEP" in result.stdout
    if command == ["train"]:
        assert "--embedding-dim" in result.stdout and "4th root" in result.stdout
    if command == ["embed"]:
        assert "--max-batch-size" in result.stdout


def _one_line_error(capsys) -> str:
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and "Traceback" not in error
    return error


def test_a_glob_that_matches_nothing(tmp_path, capsys):
    status = cli.main(["train", "--input", f"{tmp_path}/*.png", "--output", str(tmp_path / "m")])

    assert status == 2
    assert "matches no files" in _one_line_error(capsys)


def test_a_directory_that_is_not_a_model(tmp_path, capsys, seven_png):
    (tmp_path / "a.png").write_bytes(seven_png)

    status = cli.main(
        [
            "embed",
            "--model",
            str(tmp_path),
            "--input",
            f"{tmp_path}/*.png",
            "--output",
            str(tmp_path / "o"),
        ]
    )

    assert status == 2
    assert "not an embedbeam model directory" in _one_line_error(capsys)


def test_a_manifest_without_uri_column(tmp_path, capsys):
    (tmp_path / "m.csv").write_text("path,label\na.png,7\n")

    status = cli.main(
        ["train", "--manifest", str(tmp_path / "m.csv"), "--output", str(tmp_path / "m")]
    )

    assert status == 2
    assert "no `uri` column" in _one_line_error(capsys)


def test_a_misspelled_flag_is_not_silently_passed_to_beam(tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main(["train", "--input", "x", "--embeding-dim", "8"])

    assert exited.value.code == 2
    assert "--embeding-dim" in capsys.readouterr().err


def test_training_on_unusable_inputs_says_why_and_leaves_nothing(tmp_path, capsys):
    (tmp_path / "in" / "7").mkdir(parents=True)
    (tmp_path / "in" / "7" / "blank.png").write_bytes(encode(Image.new("L", (28, 28)), "PNG"))

    status = cli.main(
        ["train", "--input", f"{tmp_path}/in/*/*.png", "--output", str(tmp_path / "model")]
    )

    assert status == 2
    assert "{'no_active_features': 1}" in _one_line_error(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


def test_a_runner_that_reports_success_without_committing_is_an_error(
    tmp_path, capsys, monkeypatch
):
    """DaskRunner, for one, computes only some branches of a graph and still reports success."""

    def graph_without_its_commit(options, run_id, **_):  # claimed=, ...
        pipeline = beam.Pipeline()
        _ = pipeline | beam.Create([1, 2, 3])
        return pipeline

    monkeypatch.setattr(
        "embedbeam.pipeline.jobs.embed.build_embed_pipeline", graph_without_its_commit
    )
    out = tmp_path / "out"

    code = cli.main(["embed", "--input", "*.png", "--model", "m", "--output", str(out)])

    assert code == 2
    error = capsys.readouterr().err
    assert "the runner reported success but run" in error and str(out) in error
