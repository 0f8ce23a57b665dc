"""``--timeout``: one deadline for the whole command, counted from the start of the process.

The bound a user sets is on the wall time they see, so the clock starts when the process
did, not when the command's code runs: importing the SDK and pydantic alone takes a good
part of a second on a busy machine.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Final, TypeVar

__all__ = ["Deadline", "exit_now", "run_within"]

T = TypeVar("T")

_MEANWHILE_AFTER_S: Final = 0.5


def _process_age_s() -> float:
    """Seconds since this process started, or 0.0 where the system does not say."""
    try:
        with open("/proc/self/stat", "rb") as file:
            stat = file.read()
        # Field 22, after the command name in parentheses (which may hold spaces).
        started_ticks = int(stat[stat.rindex(b")") + 2 :].split()[19])
        boot_now = time.clock_gettime(time.CLOCK_BOOTTIME)
        return max(0.0, boot_now - started_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError, AttributeError):
        return 0.0


class Deadline:
    """The moment by which the command must have returned: ``seconds`` after it started."""

    def __init__(
        self, seconds: float, *, origin: str | None = None, started: float | None = None
    ) -> None:
        self.seconds = seconds
        self.origin = origin or f"--timeout {seconds:g}"
        """Where the bound comes from, to tell the user how to change it."""
        start = started if started is not None else time.monotonic() - _process_age_s()
        # Reporting and the interpreter's exit after it take a few tens of milliseconds.
        self._at = start + seconds

    def left(self) -> float:
        """Seconds left, never below zero."""
        return max(0.0, self._at - time.monotonic())

    def passed(self) -> bool:
        """Whether no time is left."""
        return self.left() <= 0.0


def run_within(
    deadline: Deadline, work: Callable[[], T], *, meanwhile: Callable[[], None] | None = None
) -> tuple[bool, T | None]:
    """Run ``work`` on a daemon thread; ``(True, result)``, or ``(False, None)`` at the deadline.

    ``meanwhile`` is called once if ``work`` is still running after half a second, to say what
    the command is waiting for.

    For calls that cannot be given a deadline of their own (a socket that trickles a byte
    at a time never times out; a shutdown waits for its own timeout): the command stops
    waiting and the thread is left to the end of the process.
    """
    box: list[T] = []
    failure: list[BaseException] = []

    def target() -> None:
        try:
            box.append(work())
        except BaseException as error:  # noqa: BLE001 - handed back to the caller's thread
            failure.append(error)

    thread = threading.Thread(target=target, name="otel-feedback.bounded", daemon=True)
    thread.start()
    if meanwhile is not None:
        thread.join(min(_MEANWHILE_AFTER_S, deadline.left()))
        if thread.is_alive() and not deadline.passed():
            meanwhile()
    thread.join(deadline.left())
    if failure:
        raise failure[0]
    if thread.is_alive() or not box:
        return False, None
    return True, box[0]


def exit_now(code: int) -> None:
    """End the process at once with ``code``, after writing out what was printed.

    Used only when a background call is still blocked at the deadline: the interpreter's
    normal exit could wait for it, and the deadline is a promise.
    """
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)
