"""Periodic progress lines for long stages, beside Beam's metrics counters."""

from __future__ import annotations

import logging
import time

_LOG = logging.getLogger(__name__)


class ProgressLog:
    """Counts items and logs the count and rate at most every `interval_s` seconds."""

    def __init__(self, what: str, interval_s: float = 30.0) -> None:
        self._what = what
        self._interval_s = interval_s
        self._count = 0
        self._started = time.monotonic()
        self._last_logged = self._started

    def add(self, count: int = 1) -> None:
        self._count += count
        now = time.monotonic()
        if now - self._last_logged >= self._interval_s:
            self._last_logged = now
            rate = self._count / max(now - self._started, 1e-9)
            _LOG.info("%s %d inputs so far (%.0f/s in this worker)", self._what, self._count, rate)
