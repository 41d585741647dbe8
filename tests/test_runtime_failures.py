"""A job that fails at run time says so in one line: what failed and where, exit status 1,
no traceback on the console (it is in the log, shown with --verbose), nothing committed.

Through the installed command, as a user meets it: an output on a full device (a tiny
tmpfs), on a read-only one, where this user may not write, and a model directory whose
SavedModel is gone. Mounting needs root; without it those tests are skipped.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import pathlib
import shutil
import subprocess
import traceback
from collections.abc import Iterator

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline

from embedbeam.pipeline.cli import failures
from embedbeam.pipeline.errors import RunFailure
from embedbeam.transforms.sparse.featurize_processes import (
    FeaturizeProcessError,
    FeaturizeProcesses,
)
from embedbeam.transforms.sparse.ref_featurizer import RefFeaturizerSpec
from tests.test_console import EMBEDBEAM, LIBRARY_NOISE, OUR_LOG_LINE, _as_a_user_runs_it

# Room for the claim and the first small files, not for a table of 1,000 embeddings.
FULL_DEVICE_SIZE = "16k"


def _embed(model: pathlib.Path, inputs: str, out: pathlib.Path, *extra: str, wrapper=()):
    return subprocess.run(
        [*wrapper, EMBEDBEAM, "embed", "--model", str(model), "--input", inputs]
        + ["--output", str(out), *extra],
        capture_output=True,
        text=True,
        env=_as_a_user_runs_it(),
    )


def _the_one_line(result: subprocess.CompletedProcess) -> str:
    """The failure's line, after checking it is the only line that is not progress."""
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert LIBRARY_NOISE.search(result.stderr) is None, result.stderr
    lines = [line for line in result.stderr.splitlines() if not OUR_LOG_LINE.match(line)]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("embedbeam embed: error: ")
    return lines[0]


@contextlib.contextmanager
def _tmpfs(directory: pathlib.Path, options: str) -> Iterator[pathlib.Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    directory.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(directory)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield directory
    finally:
        subprocess.run(["umount", str(directory)], check=False)


@pytest.fixture
def test_digits(digit_folders) -> str:
    return f"{digit_folders}/test/*/*.png"


@pytest.mark.slow
def test_an_output_device_that_fills_up(tmp_path, trained_model, test_digits):
    with _tmpfs(tmp_path / "small", f"size={FULL_DEVICE_SIZE}") as small:
        out = small / "out"
        result = _embed(trained_model, test_digits, out, "--featurize-processes", "1")

        # pyarrow's OSError names no file: the line names the output it was writing to.
        line = _the_one_line(result)
        assert line.startswith("embedbeam embed: error: no space left on device writing ")
        assert str(out) in line
        assert not (out / "_SUCCESS").exists()


@pytest.mark.slow
def test_a_read_only_output(tmp_path, trained_model, test_digits):
    with _tmpfs(tmp_path / "read_only", "size=1m,ro") as read_only:
        out = read_only / "out"
        result = _embed(trained_model, test_digits, out)

        assert (
            _the_one_line(result) == f"embedbeam embed: error: read-only file system writing {out}"
        )

        verbose = _embed(trained_model, test_digits, out, "--verbose")
        assert verbose.returncode == 1
        assert "Traceback" in verbose.stderr  # the log at debug level
        assert verbose.stderr.splitlines()[-1] == _the_one_line(result)


@pytest.mark.slow
def test_an_output_this_user_may_not_write(tmp_path, trained_model, test_digits):
    """Root ignores permission bits; root without its capabilities does not."""
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv (util-linux) is not installed: see the unit test of EACCES")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    without_capabilities = (setpriv, "--inh-caps=-all", "--bounding-set=-all")
    try:
        result = _embed(trained_model, test_digits, locked / "out", wrapper=without_capabilities)
    finally:
        locked.chmod(0o755)

    assert _the_one_line(result) == f"embedbeam embed: error: permission denied: {locked / 'out'}"
    assert not (locked / "out").exists()


@pytest.mark.slow
def test_a_model_directory_whose_saved_model_is_gone(tmp_path, trained_model, test_digits):
    """model.json is there (so the checks at launch pass), the SavedModel is not: what a
    job meets when the directory is removed or replaced while it starts."""
    model = tmp_path / "model"
    shutil.copytree(trained_model, model)
    shutil.rmtree(model / "variables")

    result = _embed(model, test_digits, tmp_path / "out")

    line = _the_one_line(result)
    assert line == f"embedbeam embed: error: model files not found: {model}/variables/variables"
    assert not (tmp_path / "out" / "_SUCCESS").exists()


def _raised_as_beam_does(error: BaseException, step: str = "WriteShards") -> BaseException:
    """`error` re-raised the way Beam's DoFnRunner does when the DoFn's exception cannot be
    rebuilt with the step in its message (an OSError's first argument is its errno)."""
    try:
        try:
            raise error
        except BaseException as exn:  # noqa: BLE001
            text = traceback.format_exception_only(type(exn), exn)[-1].strip()
            raise RuntimeError(f"{text} [while running '{step}']")  # noqa: B904 - as Beam does
    except RuntimeError as wrapped:
        assert wrapped.__context__ is error
        return wrapped


def test_no_space_left_wrapped_the_way_beam_wraps_it():
    full = OSError(errno.ENOSPC, "No space left on device")  # pyarrow's: no filename

    assert failures.describe(_raised_as_beam_does(full), "/out") == (
        "no space left on device writing under /out (in WriteShards)"
    )
    with_path = OSError(errno.ENOSPC, "No space left on device", "/out/_staging/r/part-1")
    assert failures.describe(_raised_as_beam_does(with_path), "/out") == (
        "no space left on device writing /out/_staging/r/part-1"
    )
    # Chained in process: the root is found without reading the message.
    quota = OSError(errno.EDQUOT, "Disk quota exceeded", "/out/x")
    hidden = _raised_as_beam_does(quota)
    hidden.args = ("the message lost on the way",)
    assert failures.describe(hidden) == "disk quota exceeded writing /out/x"


def test_a_failure_reported_only_as_text_by_a_worker():
    """Another runner (or a worker process) hands back the worker's traceback as text."""
    text = (
        "Traceback (most recent call last):\n"
        '  File "shards.py", line 36, in write_shard_batches\n'
        "OSError: [Errno 30] Read-only file system: '/out/_staging/r'\n\n"
        "RuntimeError: OSError: [Errno 30] Read-only file system: '/out/_staging/r' "
        "[while running 'WriteEmbeddings/WriteShards']"
    )

    assert failures.describe(RuntimeError(text)) == "read-only file system writing /out/_staging/r"


def test_tensorflow_file_errors_name_their_path():
    import tensorflow as tf

    written = "/models/m.partial/transform_tmp/asset_map"
    full = tf.errors.ResourceExhaustedError(None, None, f"{written}; No space left on device")
    gone = tf.errors.NotFoundError(
        None,
        None,
        "Unsuccessful TensorSliceReader constructor: "
        "Failed to find any matching files for /models/m/variables/variables",
    )
    as_text = RuntimeError(
        f"tensorflow.python.framework.errors_impl.ResourceExhaustedError: {written}; "
        "No space left on device [while running 'WriteTransformFn/WriteMetadata']"
    )

    assert (
        failures.describe(_raised_as_beam_does(full))
        == f"no space left on device writing {written}"
    )
    assert failures.describe(gone) == "model files not found: /models/m/variables/variables"
    assert failures.describe(as_text) == f"no space left on device writing {written}"


def test_permission_denied():
    denied = PermissionError(errno.EACCES, "Permission denied", "/out/_staging")

    assert failures.describe(_raised_as_beam_does(denied)) == "permission denied: /out/_staging"


def test_a_run_failure_is_its_own_message():
    lost = RunFailure("the claim on /out was taken by run 42 on host-b: nothing committed")
    wrapped = RunFailure(f"{lost} [while running 'Commit']")
    wrapped.__context__ = lost

    assert failures.describe(wrapped) == str(lost)
    as_text = (
        f"Traceback (most recent call last):\n  ...\nembedbeam.pipeline.errors.RunFailure: {lost}"
    )
    assert failures.describe(RuntimeError(as_text)) == str(lost)


def test_an_unknown_error_keeps_its_traceback(capsys):
    bug = _raised_as_beam_does(KeyError("cluster_id"))

    assert failures.describe(bug) is None
    with pytest.raises(RuntimeError, match="KeyError"):
        failures.report("embed", bug)
    assert capsys.readouterr().err == ""


def test_a_known_failure_prints_one_line_and_logs_its_traceback(capsys, caplog):
    full = _raised_as_beam_does(OSError(errno.ENOSPC, "No space left on device", "/out/x"))

    with caplog.at_level(logging.DEBUG, logger="embedbeam"):
        status = failures.report("embed", full, "/out")

    assert status == 1
    assert (
        capsys.readouterr().err
        == "embedbeam embed: error: no space left on device writing /out/x\n"
    )
    (record,) = caplog.records
    assert record.levelno == logging.DEBUG and record.exc_info[1] is full


def test_a_beam_step_that_fails_is_named_by_its_root():
    """Beam's own wrapping, not an imitation of it."""

    class _WriteToFullDisk(beam.DoFn):
        def process(self, element):
            raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(Exception) as raised:
        with TestPipeline() as pipeline:
            _ = pipeline | beam.Create([1]) | "WriteShards" >> beam.ParDo(_WriteToFullDisk())

    assert failures.describe(raised.value, "/out") == (
        "no space left on device writing under /out (in WriteShards)"
    )


class _FullDiskSpec(RefFeaturizerSpec):
    """A spec whose child fails as one writing to a full disk would."""

    def build(self):
        raise OSError(errno.ENOSPC, "No space left on device", "/full/scratch")


def test_a_featurizing_process_that_fails_hands_its_error_over():
    processes = FeaturizeProcesses(_FullDiskSpec({}, {}, 4096), 1)
    try:
        with pytest.raises(FeaturizeProcessError) as raised:
            processes.submit([])()
    finally:
        processes.close()

    assert failures.describe(raised.value) == "no space left on device writing /full/scratch"


def test_a_featurizing_process_whose_parent_is_gone_ends_without_a_traceback(capfd):
    spec = RefFeaturizerSpec({"image": {"grid": 28, "threshold": 0.2}}, {"image": "-"}, 4096)
    processes = FeaturizeProcesses(spec, 1)
    (child,) = processes._children
    child._results.close()  # as if this process had failed and gone
    processes.submit([])  # the child featurizes, and its answer finds no one
    processes.close()

    assert child._process.returncode == 1
    assert capfd.readouterr().err == ""
