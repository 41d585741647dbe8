"""The commands that read a committed table fail the same way: one line, exit status 2."""

from __future__ import annotations

import json
import shutil

import pytest

from embedbeam.pipeline import cli

pytestmark = pytest.mark.slow

COMMANDS = {
    "similar": ["--query", "no-such-id"],
    "projector": ["--logdir", "{tmp}/logdir"],
    "report": ["--output", "{tmp}/report.html"],
}


def _run(command, table, tmp_path, capsys) -> tuple[int, str]:
    extra = [arg.format(tmp=tmp_path) for arg in COMMANDS[command]]
    status = cli.main([command, "--embeddings", str(table), *extra])
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and "Traceback" not in error
    return status, error


@pytest.mark.parametrize("command", COMMANDS)
def test_a_missing_table(command, tmp_path, capsys):
    status, error = _run(command, tmp_path / "nowhere", tmp_path, capsys)

    assert status == 2 and "does not exist" in error


@pytest.mark.parametrize("command", COMMANDS)
def test_a_table_without_success(command, digits_table, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(digits_table, copy)
    (copy / "_SUCCESS").unlink()

    status, error = _run(command, copy, tmp_path, capsys)

    assert status == 2 and "no committed embeddings table" in error


def test_an_unknown_modality(digits_table, tmp_path, capsys):
    status = cli.main(["similar", "--embeddings", str(digits_table), "--query", "x",
                       "--modality", "audio"])  # fmt: skip

    error = capsys.readouterr().err.strip()
    assert status == 2 and "has no modality 'audio' (it has: image)" in error


def test_a_model_that_is_not_the_tables(digits_table, digit_folders, tmp_path, capsys):
    """A raw-file query needs the model that wrote the table; another version is refused."""
    copy = tmp_path / "copy"
    shutil.copytree(digits_table, copy)
    manifest = json.loads((copy / "_manifest.json").read_text())
    manifest["models"]["image"]["model_version"] = "0123456789abcdef"
    (copy / "_manifest.json").write_text(json.dumps(manifest))
    raw_file = sorted((digit_folders / "train" / "3").glob("*.png"))[0]

    status = cli.main(["similar", "--embeddings", str(copy), "--query", str(raw_file)])

    error = capsys.readouterr().err.strip()
    assert status == 2 and "\n" not in error
    assert "but the table was written by 0123456789abcdef" in error
