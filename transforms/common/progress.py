"""Progress of long work: items done, rate and ETA, beside Beam's metrics counters.

On a terminal it is one line rewritten in place; anywhere else (a log file, a
CI job, a remote worker) a plain log line every `interval_s` seconds, so logs
stay readable. One Progress per (process, name) is shared by every DoFn
instance and thread of the process, so the count is the process's own; an ETA
is shown only where the total is known, which the launcher knows only when
this process does all the work (the in-process DirectRunner).
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import threading
import time
from typing import TextIO

_LOG = logging.getLogger(__name__)
_REDRAW_S = 0.25
_SHARED: dict[tuple[str, str], Progress] = {}
_SHARED_LOCK = threading.Lock()


class Progress:
    """Counts items; reports count, rate and (with a total) ETA now and then."""

    def __init__(
        self,
        what: str,
        total: int | None = None,
        interval_s: float = 30.0,
        stream: TextIO | None = None,
        clock=time.monotonic,
        unit: str = "inputs",
    ) -> None:
        self._what = what
        self._total = total
        self._unit = unit
        self._stream = stream or sys.stderr
        self._on_terminal = self._stream.isatty()
        self._interval_s = _REDRAW_S if self._on_terminal else interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._count = 0
        self._started = clock()
        self._last_report = self._started

    def add(self, count: int = 1) -> None:
        with self._lock:
            self._count += count
            now = self._clock()
            finished = self._total is not None and self._count >= self._total
            if finished or now - self._last_report >= self._interval_s:
                self._last_report = now
                self._report(now, finished)

    def line(self, now: float | None = None) -> str:
        """E.g. `embed: 4,096/10,000 inputs (41%), 1,850 inputs/s, ETA 0:03`."""
        elapsed = max((now if now is not None else self._clock()) - self._started, 1e-9)
        rate = self._count / elapsed
        if self._total is None:
            return f"{self._what}: {self._count:,} {self._unit}, {_rate(rate, self._unit)}"
        share = self._count / max(self._total, 1)
        left = max(self._total - self._count, 0) / rate if rate else float("inf")
        eta = _clock_time(left) if left != float("inf") else "?"
        return (
            f"{self._what}: {self._count:,}/{self._total:,} {self._unit} ({share:.0%}), "
            f"{_rate(rate, self._unit)}, ETA {eta}"
        )

    def _report(self, now: float, finished: bool) -> None:
        if self._on_terminal:
            self._stream.write("\r\x1b[K" + self.line(now) + ("\n" if finished else ""))
            self._stream.flush()
        else:
            _LOG.info("%s", self.line(now))


@dataclasses.dataclass(frozen=True)
class ProgressSpec:
    """What a DoFn needs to report progress: a name, the total if known, the run it belongs to."""

    what: str
    total: int | None
    run_id: str

    def tracker(self) -> Progress:
        """The process's one Progress of this run and name (shared by DoFns and threads)."""
        with _SHARED_LOCK:
            key = (self.run_id, self.what)
            if key not in _SHARED:
                _SHARED[key] = Progress(self.what, self.total)
            return _SHARED[key]


def _rate(per_second: float, unit: str) -> str:
    """Items per second, or seconds per item when items are slow (training widths)."""
    if per_second >= 1 or per_second == 0:
        return f"{per_second:,.0f} {unit}/s"
    return f"{1 / per_second:,.0f} s per {unit.rstrip('s')}"


def _clock_time(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"
