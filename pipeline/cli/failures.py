"""Run-time failures as one line: what failed and where, instead of a traceback.

A job that fails at run time (the output device full, a read-only or forbidden
output, a model directory removed while the job runs, the claim on the output
lost) ends in an exception several layers deep: Beam's runners re-raise what a
DoFn raised with the step's name added (`RuntimeError: OSError: [Errno 28] No
space left on device [while running 'WriteEmbeddings/...']`), chained to the
original in process and only as text when the DoFn ran in a worker process.
`describe` walks that chain (`__cause__`, `__context__`) and reads the text
too, and names the root failure in one line; `None` means it is not one we
know, a bug, which keeps its traceback.

No Beam or TensorFlow import: TensorFlow's error classes are looked up only if
TensorFlow is loaded already (`embedbeam --help` must not load it).
"""

from __future__ import annotations

import errno
import logging
import os
import re
import sys
from collections.abc import Iterator

from embedbeam.pipeline.errors import RunFailure

_LOGGER = logging.getLogger(__name__)

# What each recognised errno means, said the way a user reads it.
_OS_ERRORS = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOENT: "no such file or directory",
}
# Failures that can only happen while writing: "... writing PATH".
_WRITING = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}
# TensorFlow's errors about files (loading a model, reading its variables), by class name.
_TF_ERRORS = {
    "NotFoundError": "model files not found",
    "PermissionDeniedError": "permission denied reading model files",
    "DataLossError": "model files corrupt or truncated",
}
_STEP = re.compile(r" \[while running '([^']*)'\]")
# How an OSError prints: `[Errno 28] No space left on device: '/path'` (the path optional).
_OS_ERROR_TEXT = re.compile(r"\[Errno (\d+)\] [^\n:\[]*(?:: '([^'\n]*)')?")
_RUN_FAILURE_TEXT = re.compile(r"(?:^|[\s.])RunFailure: ([^\n]*)", re.MULTILINE)
_TF_ERROR_TEXT = re.compile(
    rf"(?:^|[\s.])({'|'.join(_TF_ERRORS)}): ([^\n]*)",
    re.MULTILINE,
)
# TensorFlow's messages about a SavedModel that is not there: no errno, no filename.
_MISSING_MODEL_TEXT = re.compile(
    r"SavedModel file does not exist at: ?(\S+)|Failed to find any matching files for (\S+)"
)
# TensorFlow's file errors (tf.io.gfile: TFT's and the SavedModel's writes) carry no errno,
# only the path and the system's words for it: `/path; No space left on device`.
_ERRNO_BY_WORDS = {os.strerror(number): number for number in _OS_ERRORS}
_TF_OS_ERROR_TEXT = re.compile(
    rf"(?:^|Error: )((?:(?!Error: )[^;\n])+); ({'|'.join(map(re.escape, _ERRNO_BY_WORDS))})",
    re.MULTILINE,
)


def describe(error: BaseException, output: str | None = None) -> str | None:
    """One line naming the root failure of `error` and where it happened, or None when
    it is not a run-time failure we know. `output` is the job's output, named when an
    error from writing does not carry its path (pyarrow's, for one)."""
    chain = list(_chain(error))
    texts = [str(link) for link in chain]
    step = next((match.group(1) for text in texts if (match := _STEP.search(text))), None)
    for link in chain:
        if isinstance(link, RunFailure):
            return _first_line(str(link))
    for text in texts:
        if match := _last(_RUN_FAILURE_TEXT, text):
            return _first_line(match.group(1))
    for link in reversed(chain):  # the innermost is the root
        if isinstance(link, OSError) and link.errno in _OS_ERRORS:
            return _os_error(link.errno, link.filename, output, step)
    for link in reversed(chain):
        if line := _tensorflow_error(link):
            return line
    for text in reversed(texts):
        if line := _described_in(text, output, step):
            return line
    return None


def report(command: str, error: BaseException, output: str | None = None) -> int:
    """Prints the one line of a known run-time failure and returns exit status 1; the
    traceback goes to the log at debug level (--verbose). Re-raises anything else."""
    line = describe(error, output)
    if line is None:
        raise error
    _LOGGER.debug("embedbeam %s failed", command, exc_info=error)
    print_error(command, line)
    return 1


def print_error(command: str, message: str) -> None:
    """`embedbeam COMMAND: error: MESSAGE` on stderr, on a line of its own even where a
    progress line was being redrawn on the terminal."""
    if sys.stderr.isatty():
        sys.stderr.write("\r\x1b[K")
    print(f"embedbeam {command}: error: {message}", file=sys.stderr)


def _chain(error: BaseException) -> Iterator[BaseException]:
    """`error` and what it was raised from or while handling, outermost first."""
    seen: set[int] = set()
    link: BaseException | None = error
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        yield link
        link = link.__cause__ or (None if link.__suppress_context__ else link.__context__)


def _os_error(number: int, filename: object, output: str | None, step: str | None) -> str:
    what = _OS_ERRORS[number]
    writing = number in _WRITING
    if filename is not None:
        path = os.fsdecode(filename) if isinstance(filename, (str, bytes)) else str(filename)
        return f"{what} writing {path}" if writing else f"{what}: {path}"
    where = f" writing under {output}" if writing and output is not None else ""
    return what + where + (f" (in {step})" if step else "")


def _tensorflow_error(error: BaseException) -> str | None:
    tensorflow = sys.modules.get("tensorflow")
    op_error = getattr(getattr(tensorflow, "errors", None), "OpError", None)
    if op_error is None or not isinstance(error, op_error):
        return None
    if match := _last(_TF_OS_ERROR_TEXT, error.message):
        return _os_error(_ERRNO_BY_WORDS[match.group(2)], match.group(1), None, None)
    what = _TF_ERRORS.get(type(error).__name__)
    return None if what is None else _model_error(what, error.message)


def _model_error(what: str, message: str) -> str:
    """TensorFlow's message cut to the path it names, when it names a missing one."""
    if match := _MISSING_MODEL_TEXT.search(message):
        return f"model files not found: {match.group(1) or match.group(2)}"
    return f"{what}: {_first_line(message)}"


def _described_in(text: str, output: str | None, step: str | None) -> str | None:
    """The failure a message reports in words: Beam's re-raised `OSError: [Errno ...]`,
    a worker's traceback as text, TensorFlow's file errors and its messages about a
    missing SavedModel."""
    if (match := _last(_OS_ERROR_TEXT, text)) and int(match.group(1)) in _OS_ERRORS:
        return _os_error(int(match.group(1)), match.group(2), output, step)
    if match := _last(_TF_OS_ERROR_TEXT, text):
        return _os_error(_ERRNO_BY_WORDS[match.group(2)], match.group(1), output, step)
    if match := _last(_TF_ERROR_TEXT, text):
        return _model_error(_TF_ERRORS[match.group(1)], match.group(2))
    if _MISSING_MODEL_TEXT.search(text):
        return _model_error("model files not found", text)
    return None


def _last(pattern: re.Pattern[str], text: str) -> re.Match[str] | None:
    """The last match: in a traceback as text, the exception the others led to."""
    match = None
    for match in pattern.finditer(text):  # noqa: B007 - the last one is wanted
        pass
    return match


def _first_line(message: str) -> str:
    """The message's first line, without the step Beam appends."""
    lines = _STEP.sub("", message).strip().splitlines()
    return lines[0] if lines else message
