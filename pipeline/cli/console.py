"""What a command prints: its own lines by default, the libraries' too with --verbose.

By default the console shows what embedbeam says (progress, the result, one-line
errors: the records of the `embedbeam` loggers and what main prints; a run-time
failure's traceback is an `embedbeam` DEBUG record, shown with --verbose). The
libraries are quieted where each of them speaks:

- TensorFlow's C++ logging (CUDA, oneDNN, ...): TF_CPP_MIN_LOG_LEVEL=3 in the
  environment, read when TensorFlow loads, here and in every child process and
  Beam worker started after this;
- the lines TensorFlow's libraries write while loading, before absl's logging is
  initialized, which no setting reaches: the first `import tensorflow` runs with
  file descriptor 2 on a temporary file; what else was written there meanwhile
  is written back to stderr afterwards;
- Python loggers (absl, tensorflow, tensorflow_transform, apache_beam, root):
  the console handler passes only `embedbeam` records (so the ERROR with a
  traceback Beam logs for a failed step stays off the console too);
- Python warnings raised outside embedbeam are ignored, here and (through
  PYTHONWARNINGS) in child processes.

Only messages are hidden; nothing changes what is computed (the oneDNN switch,
TF_ENABLE_ONEDNN_OPTS, is left alone). A variable the user set keeps its value.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import logging
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import Any

import embedbeam.pipeline
import embedbeam.transforms

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# The logger under which Beam's local job service relays what its workers log.
_WORKER_LOGS = "apache_beam.runners.portability.local_job_service"
QUIET_ENVIRONMENT = {"TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONWARNINGS": "ignore"}
# absl's C++ log lines ("I0000 00:00:1796112327.988116   11500 port.cc:153] ..."),
# TensorFlow's older format ("2026-12-01 08:05:30.123: I tensorflow/...") and absl's
# note that logging is not initialized yet.
_LIBRARY_LINE = re.compile(
    rb"[IWE]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [^\]]+\] "
    rb"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWE] "
    rb"|WARNING: All log messages before absl::InitializeLog\(\) is called"
)


def configure(verbose: bool) -> None:
    """Sets up the console for one command; call before anything imports TensorFlow."""
    _QuietTensorflowImport.enabled = not verbose
    if not verbose:
        for name, value in QUIET_ENVIRONMENT.items():
            os.environ.setdefault(name, value)
        if _QuietTensorflowImport not in sys.meta_path:
            sys.meta_path.insert(0, _QuietTensorflowImport)
        warnings.filterwarnings("ignore")
        warnings.filterwarnings("default", module=r"embedbeam(\.|$)")
    _configure_logging(verbose)


class _OursOnly(logging.Filter):
    """Passes the records of the `embedbeam` loggers, and those Beam relays from its
    workers (--direct_running_mode=multi_processing) when our code logged them."""

    def __init__(self) -> None:
        super().__init__("embedbeam")
        self._locations = tuple(
            f'log_location: "{folder}{os.sep}'
            for package in (embedbeam.pipeline, embedbeam.transforms)
            for folder in package.__path__
        )

    def filter(self, record: logging.LogRecord) -> bool:
        if super().filter(record):
            return True
        return record.name == _WORKER_LOGS and any(
            location in record.getMessage() for location in self._locations
        )


def _configure_logging(verbose: bool) -> None:
    """A stderr handler on the root logger, unless the host set up logging already
    (pytest, an application calling main()); then only embedbeam's level is set."""
    root = logging.getLogger()
    ours = [handler for handler in root.handlers if getattr(handler, "embedbeam_console", False)]
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        handler.embedbeam_console = True
        root.addHandler(handler)
        ours = [handler]
    for handler in ours:
        for existing in [f for f in handler.filters if isinstance(f, _OursOnly)]:
            handler.removeFilter(existing)
        if not verbose:
            handler.addFilter(_OursOnly())
        root.setLevel(logging.WARNING)  # the libraries' INFO is about their internals
    # DEBUG with --verbose: the traceback of a run-time failure shown in one line.
    logging.getLogger("embedbeam").setLevel(logging.DEBUG if verbose else logging.INFO)


class _QuietTensorflowImport(importlib.abc.MetaPathFinder):
    """Finds `tensorflow` where the path finder does, and has it load quietly."""

    enabled = False

    @classmethod
    def find_spec(
        cls, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname != "tensorflow" or not cls.enabled:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


class _QuietLoader(importlib.abc.Loader):
    """The package's own loader, executing the module with its start-up lines hidden."""

    def __init__(self, loader: importlib.abc.Loader) -> None:
        self._loader = loader

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        with _library_lines_hidden():
            self._loader.exec_module(module)

    def __getattr__(self, name: str) -> Any:  # is_package, get_resource_reader, ...
        return getattr(self._loader, name)


@contextlib.contextmanager
def _library_lines_hidden() -> Iterator[None]:
    """File descriptor 2 on a temporary file meanwhile; then every line written there
    that is not a C++ library log line goes to stderr, in order."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [
                line for line in captured.read().splitlines(True) if not _LIBRARY_LINE.match(line)
            ]
            if kept:
                os.write(2, b"".join(kept))
