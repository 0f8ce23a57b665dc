"""Who owns the spool's rows, and the claims that let one process adopt those of ended ones.

Each row names the process that wrote it (:func:`new_owner`). A process takes over the rows
of owners that no longer run (:func:`running`); when it cannot rewrite their owner (a full
disk) it adopts them in memory, and a claim keeps two live processes from adopting the same
rows: a lock on one byte of the spool's file per owner, held through the :class:`HeldFile`
the spool keeps open for its life.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import struct
import sys
import uuid
import weakref

__all__ = ["HeldFile", "claim", "new_owner", "release", "running"]


class HeldFile:
    """A descriptor held open for the spool's life; closed once, by :meth:`close` or collection.

    Collected without a close, it closes quietly: a spool the engine drops is not an error.
    """

    def __init__(self, descriptor: int) -> None:
        self._descriptor = descriptor
        self._close = weakref.finalize(self, _close_quietly, descriptor)

    def fileno(self) -> int:
        return self._descriptor

    def close(self) -> None:
        self._close()


def _close_quietly(descriptor: int) -> None:
    with contextlib.suppress(OSError):
        os.close(descriptor)


# Claims on the rows of dead processes adopted in memory: a write lock on one byte per
# owner, far past the end of the file and of the bytes sqlite locks (at 1 GiB), so that they
# take no disk space and never meet sqlite's locks. An open-file-description lock (Linux)
# also excludes another Spool of the same process; elsewhere a POSIX lock, per process.
_CLAIMS_AT = 1 << 40
_CLAIMS_SPAN = 1 << 30
_OFD_SETLK: int | None = None
with contextlib.suppress(ImportError):
    import fcntl

    _OFD_SETLK = getattr(fcntl, "F_OFD_SETLK", None)


def _claim_offset(owner: str) -> int:
    digest = hashlib.blake2b(owner.encode(), digest_size=8).digest()
    return _CLAIMS_AT + int.from_bytes(digest, "big") % _CLAIMS_SPAN


def _lock_byte(descriptor: int, owner: str, *, lock: bool) -> None:
    import fcntl  # noqa: PLC0415 - POSIX only; imported at module load above where it exists

    offset = _claim_offset(owner)
    if _OFD_SETLK is not None:
        kind = fcntl.F_WRLCK if lock else fcntl.F_UNLCK
        # struct flock: l_type, l_whence, l_start, l_len, l_pid (0 for these locks).
        fcntl.fcntl(descriptor, _OFD_SETLK, struct.pack("hhqqi", kind, os.SEEK_SET, offset, 1, 0))
    else:  # pragma: no cover - systems without open-file-description locks
        fcntl.lockf(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB if lock else fcntl.LOCK_UN, 1, offset)


def claim(descriptor: int, owner: str) -> bool:
    """Whether this spool may take ``owner``'s rows: no other live one has adopted them."""
    if sys.platform == "win32":  # pragma: no cover - one process per spool file there
        return True
    try:
        _lock_byte(descriptor, owner, lock=True)
    except (BlockingIOError, PermissionError):
        return False  # held: another spool adopted them and sends them
    except OSError:
        return True  # no locks on this file system: sent, perhaps twice (receivers de-duplicate)
    return True


def release(descriptor: int, owner: str) -> None:
    """Give up the claim on ``owner``'s rows: another process may adopt them now."""
    if sys.platform == "win32":  # pragma: no cover
        return
    with contextlib.suppress(OSError):
        _lock_byte(descriptor, owner, lock=False)


def new_owner() -> str:
    """This process, as the rows it writes name it: its pid and a token of this instance."""
    return f"{os.getpid()}:{uuid.uuid4().hex}"


def running(owner: str) -> bool:
    """Whether the process that wrote rows as ``owner`` still runs (on this machine)."""
    pid_text, _, _ = owner.partition(":")
    try:
        pid = int(pid_text)
    except ValueError:
        return False  # rows of an older format: nobody owns them any more
    if pid == os.getpid():
        return False  # an earlier instance in this process, or a parent before a fork
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process, alive
    return True
