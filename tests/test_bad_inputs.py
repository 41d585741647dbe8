"""The bad-input corpus (tests/data/bad/, see its README) through one embed job of every modality.

Each manifest row says in `expect` what must become of it: `row`, or the
`stage/reason` of its dead letter. Files git cannot hold (a symlink loop, a
directory, an unreadable and an oversize file) are made here.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys

import pyarrow.dataset as ds
import pytest

from embedbeam.transforms.sparse.read_bytes import DEFAULT_MAX_BYTES

pytestmark = pytest.mark.slow

CORPUS = pathlib.Path(__file__).parent / "data" / "bad"
REPO = pathlib.Path(__file__).resolve().parents[1]


def _make_what_git_cannot_hold(root: pathlib.Path, digit: bytes) -> None:
    generated = root / "generated"
    generated.mkdir()
    (generated / "loop.png").symlink_to("loop.png")
    (generated / "folder.png").mkdir()
    (generated / "unreadable.png").write_bytes(digit)
    (generated / "unreadable.png").chmod(0)
    with open(generated / "oversize.txt", "wb") as handle:  # sparse: no disk used
        handle.truncate(DEFAULT_MAX_BYTES + 1)


def _expected(manifest: pathlib.Path) -> dict[str, str]:
    """uri -> `row` or `stage/reason`, from the manifest; unparseable lines by their number."""
    expected = {}
    for number, line in enumerate(manifest.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            uri = row.get("uri") or ""
        except (ValueError, AttributeError):
            expected[f"{manifest}#row={number}"] = "list/bad_manifest_row"
            continue
        if "text" in row or "ids" in row:
            uri = f"{manifest}#{row['id']}"
        elif uri and "://" not in uri:
            uri = str(manifest.parent / uri)
        expected[uri] = row["expect"]
    if os.geteuid() == 0:  # root reads a chmod 000 file: there it is a digit like any other
        expected[str(manifest.parent / "generated" / "unreadable.png")] = "row"
    return expected


def _embed(
    models: dict, manifest: pathlib.Path, out: pathlib.Path, *more_flags: str
) -> subprocess.CompletedProcess:
    flags = [f"--model={modality}={model}" for modality, model in models.items()]
    return subprocess.run(
        [sys.executable, "-m", "embedbeam.pipeline.cli.command", "embed", *flags, "--manifest", str(manifest),
         "--output", str(out), *more_flags],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
    )  # fmt: skip


@pytest.fixture(scope="module")
def models(trained_model, audio_model, text_model, ids_model) -> dict[str, pathlib.Path]:
    return {"image": trained_model, "audio": audio_model, "text": text_model, "ids": ids_model}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> pathlib.Path:
    root = tmp_path_factory.mktemp("bad") / "bad"
    shutil.copytree(CORPUS, root, symlinks=True)
    _make_what_git_cannot_hold(root, (CORPUS / "ok" / "a digit ✓ 七.png").read_bytes())
    return root


@pytest.fixture(scope="module")
def run(models, corpus, tmp_path_factory) -> tuple[pathlib.Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("bad_out") / "out"
    return out, _embed(models, corpus / "manifest.jsonl", out)


def test_every_bad_input_ends_as_the_dead_letter_it_should(run, corpus):
    out, finished = run
    expected = _expected(corpus / "manifest.jsonl")

    assert finished.returncode == 0, finished.stderr[-3000:]
    assert "Traceback" not in finished.stderr
    manifest = json.loads((out / "_manifest.json").read_text())
    # Widths differ between modalities: one dataset reads the columns they share.
    rows = ds.dataset(out / "embeddings", partitioning="hive").to_table(["id", "uri", "modality"])
    dead = ds.dataset(out / "dead_letter").to_table().to_pylist()
    assert manifest["inputs_seen"] == len(expected) >= 20
    assert manifest["inputs_seen"] == manifest["rows_written"] + manifest["dead_letters"]
    assert (rows.num_rows, len(dead)) == (manifest["rows_written"], manifest["dead_letters"])
    assert all(letter["stage"] and letter["error"] and letter["message"] for letter in dead)
    outcome = {letter["uri"]: f"{letter['stage']}/{letter['error']}" for letter in dead}
    outcome |= dict.fromkeys(rows.column("uri").to_pylist(), "row")
    assert outcome == expected
    assert set(rows.column("modality").to_pylist()) == {"image", "audio", "text", "ids"}
    assert "digit-ok" in rows.column("id").to_pylist()  # the first row of the id won


def test_a_second_run_featurizing_in_child_processes_gives_the_same_bytes_and_dead_letters(
    run, models, corpus, tmp_path
):
    """The first run (few inputs) read ahead on a thread; this one featurizes in two
    child processes, every modality (transforms/sparse/featurize_processes.py)."""
    first, _ = run
    again = _embed(models, corpus / "manifest.jsonl", tmp_path / "again", "--featurize-processes=2")
    assert again.returncode == 0, again.stderr[-3000:]

    one, two = (
        sorted(ds.dataset(out / "dead_letter").to_table().to_pylist(), key=lambda d: d["uri"])
        for out in (first, tmp_path / "again")
    )
    assert one == two

    for modality in models:
        one, two = (
            ds.dataset(out / "embeddings" / f"modality={modality}").to_table().sort_by("id")
            for out in (first, tmp_path / "again")
        )
        assert one.num_rows == two.num_rows > 0
        for column in ("id", "embedding", "cluster_id", "cluster_distance"):
            assert one.column(column).equals(two.column(column)), (modality, column)
