"""Featurizing batches of refs in child processes, beside the process that runs the model.

Reading and decoding hold the GIL for most of their time, and so does the
rest of a bundle (Beam's bookkeeping, the writer), so a read-ahead thread
overlaps little with them; a child process runs on a core of its own.

Not multiprocessing or ProcessPoolExecutor: their spawned children import
the launching script first (`embedbeam` -> embedbeam.pipeline.cli.command, hence Beam and
TensorFlow in every child, slow to start and large), and forking a process
that runs TensorFlow's threads can deadlock. A child here is a Python that
imports this module and the featurizers, nothing more, so it starts quickly;
batches and results travel over pipes as multiprocessing Connections. The
first child builds the featurizers and warms them up (librosa's imports, for
audio), then forks the others, which so start warm and pay those imports once:
it has no thread yet, and nothing of TensorFlow, when it forks.
"""

from __future__ import annotations

import dataclasses
import fcntl
import logging
import os
import pickle
import queue
import subprocess
import sys
import threading
import traceback
import weakref
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection

from embedbeam.transforms.common.records import InputRef
from embedbeam.transforms.sparse.ref_featurizer import (
    FeaturizedRefs,
    RefFeaturizer,
    RefFeaturizerSpec,
)

_STOP_TIMEOUT_S = 10
_PIPE_BYTES = 1 << 20
# Imported by name, not run as __main__: what a child pickles must unpickle here.
_CHILD_MAIN = "import embedbeam.transforms.sparse.featurize_processes as child; child.main()"
# A child is one core's worth of work: BLAS and OpenMP thread pools of its own (numpy's
# matrix products in a mel filterbank) would only make the children and the parent
# take cores from each other (bench/README.md, issue #18).
_ONE_THREAD_EACH = {
    name: "1" for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
}


class FeaturizeProcesses:
    """`count` child processes featurizing batches of refs together.

    `submit` hands each child a consecutive part of a batch, so one batch keeps
    every child busy and none waits for the last one's batch at the end of a job,
    and returns the call that waits for the batch's result; call those in the
    order of submission.
    """

    def __init__(self, spec: RefFeaturizerSpec, count: int) -> None:
        if count < 1:
            raise ValueError(f"need at least one featurizing process, not {count}")
        pipes = [(_pipe(), _pipe()) for _ in range(count)]
        theirs = [
            fd for (requests_in, _), (_, results_out) in pipes for fd in (requests_in, results_out)
        ]
        process = subprocess.Popen(
            [sys.executable, "-c", _CHILD_MAIN, *map(str, theirs)],
            pass_fds=theirs,
            env={**os.environ, **_ONE_THREAD_EACH},
        )
        for fd in theirs:
            os.close(fd)
        self._children = [
            _Child(process, requests_out, results_in)
            for (_, requests_out), (results_in, _) in pipes
        ]
        self._children[0].send(spec)
        self._submitted = 0
        # Children exit when their pipe closes: on close(), or when this object goes.
        self._stop = weakref.finalize(self, _stop_all, self._children, process)

    def submit(self, refs: Sequence[InputRef]) -> Callable[[], FeaturizedRefs]:
        part_size = -(-len(refs) // len(self._children))
        offsets = range(0, max(len(refs), 1), max(part_size, 1))
        receives = []
        for offset in offsets:
            child = self._children[self._submitted % len(self._children)]
            self._submitted += 1
            child.send(list(refs[offset : offset + part_size]))
            receives.append(child.receive)
        return lambda: FeaturizedRefs.merge([receive() for receive in receives], offsets)

    def close(self) -> None:
        self._stop()


class FeaturizeProcessError(RuntimeError):
    """A featurizing process failed as a whole (not one input: those are dead letters)."""


@dataclasses.dataclass(frozen=True)
class _Failure:
    """What failed in a child: its traceback as text and, when it pickles, the exception
    itself, which the parent raises its error from (an OSError keeps its errno and path
    for the one line the command prints)."""

    traceback: str
    error: BaseException | None = None

    @classmethod
    def of(cls, error: BaseException) -> _Failure:
        text = "".join(traceback.format_exception(error))
        try:
            pickle.loads(pickle.dumps(error))
        except Exception:  # noqa: BLE001 - any exception may fail to pickle; the text stays
            return cls(text)
        return cls(text, error)


class _Child:
    """The parent's end of one child's pipes; `process` is the first child, which the
    others were forked from (and which waits for them)."""

    def __init__(self, process: subprocess.Popen, requests_out: int, results_in: int) -> None:
        self._process = process
        self._requests = Connection(requests_out, readable=False)
        self._results = Connection(results_in, writable=False)

    def send(self, request: RefFeaturizerSpec | list[InputRef]) -> None:
        try:
            self._requests.send(request)
        except OSError as error:  # BrokenPipeError: the child is gone
            raise self._exited() from error

    def receive(self) -> FeaturizedRefs:
        try:
            result = self._results.recv()
        except EOFError as error:
            raise self._exited() from error
        if isinstance(result, _Failure):
            message = f"a featurizing process failed:\n{result.traceback}"
            raise FeaturizeProcessError(message) from result.error
        return result

    def close_requests(self) -> None:
        self._requests.close()

    def close_results(self) -> None:
        self._results.close()

    def _exited(self) -> FeaturizeProcessError:
        try:  # a forked child can end while the first one lives on
            code = self._process.wait(_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            return FeaturizeProcessError("a featurizing process forked by the first one exited")
        return FeaturizeProcessError(
            f"a featurizing process (pid {self._process.pid}) exited with code {code}"
        )


def _pipe() -> tuple[int, int]:
    """A pipe that holds a whole batch or result, where possible, so neither side blocks
    on the other's GIL to take it."""
    read, write = os.pipe()
    try:
        fcntl.fcntl(write, fcntl.F_SETPIPE_SZ, _PIPE_BYTES)
    except (AttributeError, OSError):  # not Linux, or above /proc/sys/fs/pipe-max-size
        pass
    return read, write


def _stop_all(children: list[_Child], process: subprocess.Popen) -> None:
    for child in children:
        child.close_requests()
    try:
        process.wait(_STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    for child in children:
        child.close_results()


def _start(pipes: list[tuple[Connection, Connection]]) -> None:
    """The first child: the spec, the featurizers built and warmed up (while the parent
    starts the job), a fork for each other pair of pipes, then its own pair served."""
    requests, results = pipes[0]
    try:
        featurize = requests.recv().build()
        featurize.warm_up()
    except Exception as error:  # noqa: BLE001 - reported to the parent, which raises it
        for _, each in pipes:
            each.send(_Failure.of(error))
        return
    forks = []
    for index in range(1, len(pipes)):
        if (pid := os.fork()) == 0:
            _close_all_but(pipes, index)
            try:
                _serve(featurize, *pipes[index])
            finally:
                os._exit(0)
        forks.append(pid)
    _close_all_but(pipes, 0)
    try:
        _serve(featurize, requests, results)
    finally:
        for pid in forks:
            os.waitpid(pid, 0)


def _close_all_but(pipes: list[tuple[Connection, Connection]], kept: int) -> None:
    for index, (requests, results) in enumerate(pipes):
        if index != kept:
            requests.close()
            results.close()


def _serve(featurize: RefFeaturizer, requests: Connection, results: Connection) -> None:
    """A child's loop: batches of refs until its pipe closes."""
    batches: queue.SimpleQueue[list[InputRef] | None] = queue.SimpleQueue()
    threading.Thread(target=_take_requests, args=(requests, batches), daemon=True).start()
    while (refs := batches.get()) is not None:
        try:
            outcome: FeaturizedRefs | _Failure = featurize(refs)
        except Exception as error:  # noqa: BLE001 - reported to the parent, which raises it
            outcome = _Failure.of(error)
        results.send(outcome)


def _take_requests(requests: Connection, batches: queue.SimpleQueue) -> None:
    """Takes batches off the pipe as they arrive, so the parent never blocks sending one
    while this process blocks sending it a result (a pipe holds 64 KB; results are more)."""
    try:
        while True:
            batches.put(requests.recv())
    except (EOFError, OSError):  # closed, or the parent is gone
        pass
    finally:
        batches.put(None)


def main() -> None:
    """The first child's entry point (_CHILD_MAIN): argv holds each child's two pipes'
    descriptors (requests, results), the first child's first.

    A child prints no traceback: what fails in it goes to the parent as a _Failure,
    and a pipe that breaks means the parent is gone (it failed, and says why in one
    line), so the child just ends, with a status the parent would report.
    """
    logging.basicConfig(format="%(levelname)s featurize process %(process)d: %(message)s")
    try:
        fds = [int(fd) for fd in sys.argv[1:]]
        _start(
            [
                (Connection(requests, writable=False), Connection(results, readable=False))
                for requests, results in zip(fds[::2], fds[1::2], strict=True)
            ]
        )
    except (OSError, EOFError):  # BrokenPipeError and the like: the parent is gone
        sys.exit(1)
