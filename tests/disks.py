"""A full disk for tests: a tiny tmpfs filled to the last byte, or sqlite's page limit."""

from __future__ import annotations

import errno
import os
from pathlib import Path

from otel_feedback._export.spool import Spool


def _write_until_refused(descriptor: int) -> int:
    """Write to ``descriptor`` until the system refuses; its errno."""
    try:
        while True:
            os.write(descriptor, b"\0" * 4096)
    except OSError as error:
        return error.errno or 0


class TinyDisk:
    """A 1 MiB tmpfs, filled to the last byte by a file that :meth:`free` deletes."""

    def __init__(self, mount_point: Path) -> None:
        self.mount_point = mount_point
        self._filler = mount_point / "filler"

    def fill(self, _: Spool | None = None) -> None:
        descriptor = os.open(self._filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            assert _write_until_refused(descriptor) == errno.ENOSPC
        finally:
            os.close(descriptor)

    def free(self, _: Spool | None = None) -> None:
        self._filler.unlink()


class PageLimit:
    """sqlite's ``max_page_count`` on the spool's connection: no page past those it has."""

    def __init__(self, directory: Path) -> None:
        self.mount_point = directory

    def fill(self, spool: Spool) -> None:
        connection = spool._connection  # the limit is per connection
        (pages,) = connection.execute("PRAGMA page_count").fetchone()
        connection.execute(f"PRAGMA max_page_count = {int(pages)}")

    def free(self, spool: Spool) -> None:
        spool._connection.execute("PRAGMA max_page_count = 1073741823")
