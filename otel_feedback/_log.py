"""The package's logger, and a once-per-cause guard so that a fault never floods the log."""

from __future__ import annotations

import logging
import threading

__all__ = ["logger", "warn_once"]

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
