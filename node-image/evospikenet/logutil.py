"""Structured, one-line-per-event logging and a rate limiter for noisy warnings."""

from __future__ import annotations

import logging
import os
import sys
import threading
import time


def kv(event: str, **fields: object) -> str:
    """``event key=value ...`` with values quoted only when they contain spaces."""
    parts = [f"event={event}"]
    for key, value in fields.items():
        text = str(value)
        if not text or any(c in text for c in " \t\"="):
            text = '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
        parts.append(f"{key}={text}")
    return " ".join(parts)


def log_event(logger: logging.Logger, level: int, event: str, **fields: object) -> None:
    if logger.isEnabledFor(level):
        logger.log(level, kv(event, **fields))


class RateLimiter:
    """Allows one event per ``interval`` seconds per key and counts what it suppressed.

    Used for warnings about bad input: a flood of garbage must not become a flood of logs.
    """

    def __init__(self, interval: float = 5.0, clock=time.monotonic) -> None:
        self.interval = interval
        self._clock = clock
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self._lock = threading.Lock()

    def allow(self, key: str) -> int | None:
        """None when suppressed; otherwise how many events were suppressed since the last one."""
        now = self._clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.interval:
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                return None
            self._last[key] = now
            return self._suppressed.pop(key, 0)


def setup_logging(level: str | None = None) -> None:
    """Log to stderr, one line per record, level from ``--log-level`` or ``LOG_LEVEL``."""
    level = (level or os.environ.get("LOG_LEVEL") or "INFO").upper()
    logging.basicConfig(
        level=getattr(logging, level, logging.INFO),
        stream=sys.stderr,
        format="%(asctime)s level=%(levelname)s logger=%(name)s %(message)s",
    )
