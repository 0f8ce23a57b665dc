"""The package's logger, and guards that keep a fault from flooding the log.

``warn_once`` is for conditions that do not change within a process (a bad setting). Losses
are never reported only once: :class:`LossLog` logs the first loss of each reason at once and
then at most one summary line per reason and interval, with the count since the last line.
"""

from __future__ import annotations

import logging
import threading
import time

__all__ = ["LossLog", "logger", "warn_once"]

logger = logging.getLogger("otel_feedback")

_seen: set[str] = set()
_seen_lock = threading.Lock()


def warn_once(cause: str, message: str, *args: object, exc_info: bool = False) -> None:
    """Log ``message`` at WARNING the first time ``cause`` happens in this process."""
    with _seen_lock:
        if cause in _seen:
            return
        _seen.add(cause)
    logger.warning(message, *args, exc_info=exc_info)


def reset_warnings() -> None:
    """Forget which warnings were given (for tests that check a warning appears)."""
    with _seen_lock:
        _seen.clear()


class LossLog:
    """Rate-limited WARNING lines about lost records, per reason.

    The first loss of a reason is logged at once; later ones are summed and logged when
    ``interval_s`` has passed since that reason's last line, and whatever is left unlogged
    is logged by :meth:`flush` (at shutdown).
    """

    def __init__(self, what: str, *, interval_s: float = 30.0) -> None:
        self._what = what
        self._interval_s = interval_s
        self._lock = threading.Lock()
        self._unlogged: dict[tuple[str, str], int] = {}
        self._last: dict[tuple[str, str], float] = {}

    def report(self, where: str, reason: str, count: int) -> None:
        """Note that ``count`` records for ``where`` were lost for ``reason``; log if due."""
        now = time.monotonic()
        cause = (where, reason)
        with self._lock:
            total = self._unlogged.get(cause, 0) + count
            last = self._last.get(cause)
            if last is not None and now - last < self._interval_s:
                self._unlogged[cause] = total
                return
            self._unlogged.pop(cause, None)
            self._last[cause] = now
        self._log(cause, total)

    def flush(self) -> None:
        """Log every count not logged yet."""
        with self._lock:
            unlogged, self._unlogged = self._unlogged, {}
        for cause, count in unlogged.items():
            self._log(cause, count)

    def _log(self, cause: tuple[str, str], count: int) -> None:
        logger.warning("Dropped %d %s for %s: %s", count, self._what, *cause)
