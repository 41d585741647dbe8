"""Special files are inputs like any other: a FIFO, a socket, a device, a directory, a
symlink loop or a symlink to nothing ends as a dead letter with its reason, never a hang.

Git cannot hold these files, so each test makes its own. Every test is bounded in time:
the jobs run the CLI in a subprocess with a timeout, the plain-function tests under an
alarm, so a regression fails instead of hanging the suite.
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import socket
import subprocess
import sys

import pyarrow.dataset as ds
import pytest
from apache_beam.io.filesystems import FileSystems

from embedbeam.transforms.common.records import InputRef
from embedbeam.transforms.list_inputs import InputSource, list_refs, manifest_columns
from embedbeam.transforms.sparse import InvalidInput
from embedbeam.transforms.sparse.read_bytes import read_bounded, read_or_dead_letter
from embedbeam.transforms.table.files import match_paths

REPO = pathlib.Path(__file__).resolve().parents[1]
JOB_TIMEOUT_SECONDS = 240
CALL_TIMEOUT_SECONDS = 20


@pytest.fixture
def no_hang():
    """Fails the test with TimeoutError where a blocking open would hang it."""

    def give_up(signum, frame):
        raise TimeoutError("blocked: a special file was opened as if it were regular")

    previous = signal.signal(signal.SIGALRM, give_up)
    signal.alarm(CALL_TIMEOUT_SECONDS)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def _make_special_files(folder: pathlib.Path) -> dict[str, str]:
    """FIFO, socket, device, loop and dangling names in `folder`, with the reason each
    must end as (`stage/reason`)."""
    folder.mkdir(parents=True, exist_ok=True)
    os.mkfifo(folder / "fifo.png")
    os.mkfifo(folder / "fifo.jsonl")  # listing opens .jsonl files to split their lines
    with socket.socket(socket.AF_UNIX) as server:
        # A socket path may be at most 107 bytes: bind it by a short relative name.
        cwd = os.getcwd()
        os.chdir(folder)
        try:
            server.bind("socket.png")
        finally:
            os.chdir(cwd)
    (folder / "zero.png").symlink_to("/dev/zero")
    (folder / "loop.png").symlink_to("loop.png")
    (folder / "dangling.png").symlink_to("nowhere.png")
    return {
        "fifo.png": "read/not_a_regular_file",
        "fifo.jsonl": "list/not_a_regular_file",
        "socket.png": "read/not_a_regular_file",
        "zero.png": "read/not_a_regular_file",
        "loop.png": "read/symlink_loop",
        "dangling.png": "read/missing_file",
    }


def _embed(model: pathlib.Path, out: pathlib.Path, *source: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "embedbeam.pipeline.cli.command", "embed", "--model", str(model),
         *source, "--output", str(out)],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=JOB_TIMEOUT_SECONDS,
    )  # fmt: skip


def _outcome(out: pathlib.Path) -> dict[str, str]:
    """File name -> `row` or `stage/reason`, after checking the run's counts add up."""
    manifest = json.loads((out / "_manifest.json").read_text())
    rows = ds.dataset(out / "embeddings", partitioning="hive").to_table(["uri"])
    dead = ds.dataset(out / "dead_letter").to_table().to_pylist()
    assert manifest["inputs_seen"] == manifest["rows_written"] + manifest["dead_letters"]
    assert (rows.num_rows, len(dead)) == (manifest["rows_written"], manifest["dead_letters"])
    outcome = {letter["uri"].rsplit("/", 1)[-1]: f"{letter['stage']}/{letter['error']}"
               for letter in dead}  # fmt: skip
    return outcome | {uri.rsplit("/", 1)[-1]: "row" for uri in rows.column("uri").to_pylist()}


@pytest.mark.slow
def test_a_glob_over_special_files_finishes_with_a_dead_letter_for_each(
    tmp_path, trained_model, seven_png
):
    expected = _make_special_files(tmp_path / "in" / "7")
    (tmp_path / "in" / "7" / "seven.png").write_bytes(seven_png)
    (tmp_path / "in" / "7" / "link.png").symlink_to("seven.png")  # an ordinary symlink reads

    finished = _embed(trained_model, tmp_path / "out", "--input", f"{tmp_path}/in/**")

    assert finished.returncode == 0, finished.stderr[-3000:]
    assert "Traceback" not in finished.stderr
    assert _outcome(tmp_path / "out") == expected | {"seven.png": "row", "link.png": "row"}


@pytest.mark.slow
def test_a_manifest_naming_a_device_a_directory_and_a_fifo_finishes_with_dead_letters(
    tmp_path, trained_model, seven_png
):
    (tmp_path / "seven.png").write_bytes(seven_png)
    (tmp_path / "folder.png").mkdir()
    os.mkfifo(tmp_path / "fifo.png")
    rows = [
        {"uri": "seven.png"},
        {"uri": "/dev/zero", "modality": "image"},  # no extension: the row says what it is
        {"uri": "folder.png"},
        {"uri": "fifo.png"},
    ]
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(row) + "\n" for row in rows))

    finished = _embed(trained_model, tmp_path / "out", "--manifest", str(manifest))

    assert finished.returncode == 0, finished.stderr[-3000:]
    assert _outcome(tmp_path / "out") == {
        "seven.png": "row",
        "zero": "read/not_a_regular_file",
        "folder.png": "read/not_a_regular_file",
        "fifo.png": "read/not_a_regular_file",
    }


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_a_manifest_that_is_a_fifo_or_a_device_is_refused_in_one_line(
    tmp_path, trained_model, kind
):
    manifest = tmp_path / "manifest.csv"
    if kind == "fifo":
        os.mkfifo(manifest)
    else:
        manifest.symlink_to("/dev/zero")

    finished = _embed(trained_model, tmp_path / "out", "--manifest", str(manifest))

    assert finished.returncode == 2
    assert finished.stderr.strip().splitlines() == [
        f"embedbeam embed: error: cannot read manifest {manifest}: {manifest} is "
        f"{'a FIFO' if kind == 'fifo' else 'a character device'}, not a regular file"
    ]


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("fifo.png", "not_a_regular_file"),
        ("socket.png", "not_a_regular_file"),
        ("zero.png", "not_a_regular_file"),
        ("loop.png", "symlink_loop"),
        ("dangling.png", "missing_file"),
    ],
)
def test_read_bounded_refuses_a_special_file_with_its_reason(tmp_path, no_hang, name, reason):
    _make_special_files(tmp_path)
    ref = InputRef(id="x", uri=str(tmp_path / name), label=None, modality="image")

    with pytest.raises(InvalidInput) as caught:
        read_bounded(ref, 1000)

    assert caught.value.reason == reason
    assert name in str(caught.value)


def test_read_bounded_reads_a_symlink_to_a_regular_file(tmp_path, no_hang):
    (tmp_path / "real.png").write_bytes(b"png bytes")
    (tmp_path / "link.png").symlink_to("real.png")
    ref = InputRef(id="x", uri=str(tmp_path / "link.png"), label=None, modality="image")

    assert read_bounded(ref, 1000) == b"png bytes"


def test_a_fifo_named_jsonl_is_listed_as_a_broken_input_without_opening_it(tmp_path, no_hang):
    _make_special_files(tmp_path / "7")

    refs = {ref.uri.rsplit("/", 1)[-1]: ref for ref in list_refs(InputSource(f"{tmp_path}/**"))}

    assert refs["fifo.jsonl"].problem[0] == "not_a_regular_file"
    assert all(ref.problem is None for name, ref in refs.items() if name != "fifo.jsonl")


def test_a_manifest_that_is_a_fifo_cannot_be_read(tmp_path, no_hang):
    os.mkfifo(tmp_path / "manifest.jsonl")

    with pytest.raises(InvalidInput, match="a FIFO, not a regular file"):
        manifest_columns(str(tmp_path / "manifest.jsonl"))


def test_listing_keeps_what_beam_matches_and_the_links_it_drops_without_a_word(tmp_path, no_hang):
    """A symlinked directory that loops back is not walked into, as in Beam; a dangling
    symlink and a symlink loop, which Beam drops, are kept for reading to dead-letter."""
    _make_special_files(tmp_path / "7")
    (tmp_path / "7" / "up").symlink_to("..")
    beam_paths = [m.path for m in FileSystems.match([f"{tmp_path}/**"])[0].metadata_list]

    listed = match_paths(f"{tmp_path}/**")

    assert [path for path in listed if path in beam_paths] == beam_paths
    assert sorted(path.rsplit("/", 1)[-1] for path in set(listed) - set(beam_paths)) == [
        "dangling.png",
        "loop.png",
    ]


def _listed_then(tmp_path, change) -> bytes | object:
    """Lists one file, applies `change` to it, then reads it as the job would."""
    (tmp_path / "7").mkdir()
    path = tmp_path / "7" / "a.png"
    path.write_bytes(b"x" * 100)
    (ref,) = list_refs(InputSource(f"{tmp_path}/*/*.png"))
    change(path)
    return read_or_dead_letter(ref, 1000)


def test_a_file_that_vanishes_after_listing_is_a_missing_file(tmp_path, no_hang):
    letter = _listed_then(tmp_path, pathlib.Path.unlink)

    assert (letter.stage, letter.error) == ("read", "missing_file")


def test_a_file_replaced_by_a_fifo_after_listing_is_not_a_regular_file(tmp_path, no_hang):
    def to_fifo(path):
        path.unlink()
        os.mkfifo(path)

    letter = _listed_then(tmp_path, to_fifo)

    assert (letter.stage, letter.error) == ("read", "not_a_regular_file")


def test_a_file_that_grows_past_the_limit_after_listing_is_too_large(tmp_path, no_hang):
    letter = _listed_then(tmp_path, lambda path: path.write_bytes(b"x" * 1001))

    assert (letter.stage, letter.error) == ("read", "file_too_large")


def test_a_file_that_shrinks_after_listing_is_read_as_it_is_when_opened(tmp_path, no_hang):
    assert _listed_then(tmp_path, lambda path: path.write_bytes(b"x" * 10)) == b"x" * 10


@pytest.mark.parametrize("change", ["grows", "shrinks"])
def test_a_file_that_changes_while_it_is_read_is_file_changed(
    tmp_path, no_hang, monkeypatch, change
):
    path = tmp_path / "a.png"
    path.write_bytes(b"x" * 100)
    real_read = os.read

    def read_after_change(descriptor, size):  # the change lands between fstat and read
        monkeypatch.setattr(os, "read", real_read)
        with open(path, "ab" if change == "grows" else "r+b") as handle:
            handle.write(b"y" * 10) if change == "grows" else handle.truncate(50)
        return real_read(descriptor, size)

    monkeypatch.setattr(os, "read", read_after_change)
    letter = read_or_dead_letter(InputRef("x", str(path), None, "image"), 1000)

    assert (letter.stage, letter.error) == ("read", "file_changed")
    assert "100 bytes when opened" in letter.message
