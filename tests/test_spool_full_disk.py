"""The spool on a full disk: nothing half written, rows of ended processes still delivered.

A full disk is made two ways: a tiny tmpfs filled to the last byte (real ``ENOSPC``; needs
permission to mount, else those tests are skipped and say why), and sqlite's
``max_page_count`` on the spool's connection (runs everywhere; a rewrite that does not grow
the file still succeeds under it, so the rows here are made to grow).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from uuid import UUID, uuid4

import pytest
from opentelemetry.sdk.trace import TracerProvider

from otel_feedback import Feedback, FeedbackSpanProcessor, InMemoryFeedbackExporter
from otel_feedback._export.spool import Spool
from tests.disks import PageLimit, TinyDisk

ROUTE = "InMemoryFeedbackExporter"  # the route of the exporter that reads them back
ENDED = "999999999"  # no process has this pid; short, so that taking the rows over grows them


def _records(count: int) -> list[Feedback]:
    now = datetime.now(timezone.utc)
    return [
        Feedback(id=uuid4(), created_at=now, modified_at=now, key="k", comment="c" * 200)
        for _ in range(count)
    ]


def _left_by_an_ended_process(path: Path, count: int) -> list[UUID]:
    """``count`` rows in the spool at ``path`` whose owner no longer runs."""
    spool = Spool(str(path), max_records=100_000, max_age_s=3600)
    spool._owner = ENDED  # as that process wrote them
    records = _records(count)
    assert spool.put(records, [ROUTE]) == count
    spool.close()
    with sqlite3.connect(path) as connection:
        connection.execute("VACUUM")  # pages packed: rows that grow need new ones
    connection.close()
    return [record.id for record in records]


def _owners(path: Path) -> dict[str, int]:
    with sqlite3.connect(path) as connection:
        found = dict(
            connection.execute("SELECT owner, COUNT(*) FROM otel_feedback_spool GROUP BY owner")
        )
    connection.close()
    return {str(owner): int(count) for owner, count in found.items()}


def _intact(path: Path) -> bool:
    with sqlite3.connect(path) as connection:
        (answer,) = connection.execute("PRAGMA integrity_check").fetchone()
    connection.close()
    return bool(answer == "ok")


@pytest.fixture(params=["tmpfs", "max_page_count"])
def full_disk(request: pytest.FixtureRequest, tmp_path: Path) -> TinyDisk | PageLimit:
    if request.param == "tmpfs":
        disk: TinyDisk = request.getfixturevalue("tiny_disk")
        return disk
    return PageLimit(tmp_path)


def test_rows_that_cannot_be_taken_over_are_adopted_in_memory(
    full_disk: TinyDisk | PageLimit, caplog: pytest.LogCaptureFixture
) -> None:
    path = full_disk.mount_point / "app" / "feedback.sqlite"
    left = _left_by_an_ended_process(path, 200)
    spool = Spool(str(path), max_records=100_000, max_age_s=3600)
    full_disk.fill(spool)
    with caplog.at_level(logging.WARNING, logger="otel_feedback"):
        assert spool.take_over() == {ROUTE: 200}
    assert "Could not take over the rows of ended processes" in caplog.text
    assert str(path) in caplog.text
    assert _owners(path) == {ENDED: 200}  # nothing rewritten
    # The adopted rows read as this process's own.
    assert spool.count(ROUTE) == 200
    rows, unreadable = spool.oldest(ROUTE, 500)
    assert unreadable == []
    assert [row.record.id for row in rows] == left
    assert spool.take_over() == {}  # adopted once, not counted again
    # Once there is room, the rows are rewritten as this process's at the next pass.
    full_disk.free(spool)
    assert spool.take_over() == {}
    (owner,) = _owners(path)
    assert owner.startswith(f"{os.getpid()}:")
    assert spool.count(ROUTE) == 200
    spool.remove([str(i) for i in left[:50]], ROUTE)
    assert spool.count(ROUTE) == 150
    spool.close()
    assert _intact(path)


def test_adopted_rows_are_removed_and_expired_like_own_ones(tmp_path: Path) -> None:
    path = tmp_path / "feedback.sqlite"
    left = _left_by_an_ended_process(path, 100)
    spool = Spool(str(path), max_records=100_000, max_age_s=3600)
    limit = PageLimit(tmp_path)
    limit.fill(spool)
    assert spool.take_over() == {ROUTE: 100}
    spool.remove([str(i) for i in left[:40]], ROUTE)  # deleting takes no new page
    assert spool.count(ROUTE) == 60
    assert _owners(path) == {ENDED: 60}
    spool.max_age_s = 0.0  # every row is now too old
    assert spool.expire() == {ROUTE: 60}
    assert spool.count(ROUTE) == 0
    assert _owners(path) == {}
    spool.close()


HOLDER = """
import sys
from otel_feedback._export.spool import Spool
from tests.disks import PageLimit, TinyDisk

spool = Spool(sys.argv[1], max_records=100_000, max_age_s=3600)
(pages,) = spool._connection.execute("PRAGMA page_count").fetchone()
spool._connection.execute(f"PRAGMA max_page_count = {pages}")  # a full disk
print(sum(spool.take_over().values()), flush=True)
sys.stdin.readline()  # until told to end
"""


def test_two_live_processes_do_not_both_adopt_the_same_rows(tmp_path: Path) -> None:
    path = tmp_path / "feedback.sqlite"
    _left_by_an_ended_process(path, 100)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "100"  # it adopted them: it sends them
        spool = Spool(str(path), max_records=100_000, max_age_s=3600)
        PageLimit(tmp_path).fill(spool)
        assert spool.take_over() == {}
        assert spool.count(ROUTE) == 0
    finally:
        holder.communicate("\n", timeout=60)
    assert holder.returncode == 0
    # The holder ended without sending them: they are this process's to send now.
    assert spool.take_over() == {ROUTE: 100}
    assert spool.count(ROUTE) == 100
    spool.close()


def test_every_method_fails_cleanly_on_a_full_disk_and_works_once_there_is_room(
    full_disk: TinyDisk | PageLimit,
) -> None:
    path = full_disk.mount_point / "app" / "feedback.sqlite"
    spool = Spool(str(path), max_records=100_000, max_age_s=3600)
    kept = _records(20)
    assert spool.put(kept, [ROUTE]) == 20
    full_disk.fill(spool)
    with pytest.raises(sqlite3.OperationalError, match="full"):
        spool.put(_records(300), [ROUTE])
    if isinstance(full_disk, TinyDisk):  # deleting needs room in the WAL; a page limit not
        with pytest.raises(sqlite3.OperationalError, match="full"):
            spool.remove([str(r.id) for r in kept[:5]], ROUTE)
        spool.max_age_s = 0.0
        with pytest.raises(sqlite3.OperationalError, match="full"):
            spool.expire()
        spool.max_age_s = 3600
    # Reads still answer, and nothing was half done.
    assert spool.take_over() == {}
    assert spool.count(ROUTE) == 20
    rows, _ = spool.oldest(ROUTE, 100)
    assert [row.record.id for row in rows] == [r.id for r in kept]
    full_disk.free(spool)
    # Once there is room, every write works, and the counts agree with the file.
    more = _records(30)
    assert spool.put(more, [ROUTE]) == 30
    spool.remove([str(r.id) for r in kept[:5]], ROUTE)
    assert spool.count(ROUTE) == 45
    assert sum(_owners(path).values()) == 45
    spool.max_age_s = 0.0
    assert spool.expire() == {ROUTE: 45}
    spool.max_age_s = 3600
    assert spool.put(_records(3), [ROUTE]) == 3
    assert spool.count(ROUTE) == 3
    spool.close()
    assert _intact(path)


CRASHING_APP = """
import os, sys
from datetime import datetime, timezone
from uuid import uuid4
from otel_feedback import Feedback
from otel_feedback._export.spool import Spool
from tests.disks import PageLimit, TinyDisk

spool = Spool(sys.argv[1], max_records=100_000, max_age_s=3600)
now = datetime.now(timezone.utc)
records = [
    Feedback(id=uuid4(), created_at=now, modified_at=now, key="k", comment="c" * 200)
    for _ in range(int(sys.argv[2]))
]
spool.put(records, ["InMemoryFeedbackExporter"])  # the endpoint was down: they wait on disk
print("\\n".join(str(record.id) for record in records), flush=True)
os._exit(9)  # killed, its -wal and -shm left behind
"""


def test_the_next_start_delivers_a_crashed_processs_rows_from_a_full_disk(
    tiny_disk: TinyDisk, caplog: pytest.LogCaptureFixture
) -> None:
    path = tiny_disk.mount_point / "app" / "feedback.sqlite"
    crashed = subprocess.run(
        [sys.executable, "-c", CRASHING_APP, str(path), "300"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert crashed.returncode == 9, crashed.stderr[-2000:]
    left = sorted(UUID(line) for line in crashed.stdout.split())
    assert len(left) == 300
    tiny_disk.fill()
    memory = InMemoryFeedbackExporter()
    provider = TracerProvider()
    processor = FeedbackSpanProcessor(memory, spool_path=path)
    provider.add_span_processor(processor)
    assert processor.force_flush(30_000)
    provider.shutdown()
    assert sorted(r.id for r in memory.get_finished_feedback()) == left
    assert processor.stats().exported == {ROUTE: 300}
    assert "Could not take over the rows of ended processes" in caplog.text


def test_a_spool_with_no_room_for_its_shm_is_used_alone_until_there_is_room(
    tiny_disk: TinyDisk, caplog: pytest.LogCaptureFixture
) -> None:
    # Closed cleanly, the spool has no -wal nor -shm left: sqlite must make a -shm to open
    # it for sharing, and a full disk has no room for one.
    path = tiny_disk.mount_point / "app" / "feedback.sqlite"
    left = _left_by_an_ended_process(path, 200)
    assert not Path(f"{path}-shm").exists()
    tiny_disk.fill()
    with caplog.at_level(logging.INFO, logger="otel_feedback"):
        spool = Spool(str(path), max_records=100_000, max_age_s=3600)
        assert "cannot be opened for sharing" in caplog.text
        assert spool.take_over() == {ROUTE: 200}
        rows, _ = spool.oldest(ROUTE, 500)
        assert [row.record.id for row in rows] == left
        tiny_disk.free()
        assert spool.take_over() == {}
        assert "shared with other processes again" in caplog.text
    (owner,) = _owners(path)  # taken over on disk now that there is room
    assert owner.startswith(f"{os.getpid()}:")
    other = subprocess.run(  # another process can open it again
        [sys.executable, "-c", OPEN_AND_COUNT, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert other.stdout.strip() == "200", other.stderr[-2000:]
    spool.close()


OPEN_AND_COUNT = """
import sys
from otel_feedback._export.spool import Spool
from tests.disks import PageLimit, TinyDisk

spool = Spool(sys.argv[1], max_records=100_000, max_age_s=3600)
print(spool._rows)
"""


def test_the_next_start_delivers_from_a_full_disk_with_no_room_for_the_shm(
    tiny_disk: TinyDisk, caplog: pytest.LogCaptureFixture
) -> None:
    path = tiny_disk.mount_point / "app" / "feedback.sqlite"
    left = _left_by_an_ended_process(path, 300)
    tiny_disk.fill()
    memory = InMemoryFeedbackExporter()
    provider = TracerProvider()
    processor = FeedbackSpanProcessor(memory, spool_path=path)
    provider.add_span_processor(processor)
    assert processor.force_flush(30_000)
    provider.shutdown()
    assert sorted(r.id for r in memory.get_finished_feedback()) == sorted(left)
    assert "cannot be opened for sharing" in caplog.text


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX only")
def test_a_forked_child_leaves_the_rows_its_parent_adopted_to_the_parent(tmp_path: Path) -> None:
    path = tmp_path / "feedback.sqlite"
    _left_by_an_ended_process(path, 50)
    spool = Spool(str(path), max_records=100_000, max_age_s=3600)
    PageLimit(tmp_path).fill(spool)
    assert spool.take_over() == {ROUTE: 50}
    reading, writing = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            spool.reopen()  # as the engine does after a fork
            PageLimit(tmp_path).fill(spool)
            taken = sum(spool.take_over().values())
            os.write(writing, f"{taken} {spool.count(ROUTE)}".encode())
        finally:
            os._exit(0)
    os.close(writing)
    with os.fdopen(reading) as pipe:
        child = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert child == "0 0"  # the parent sends them: the child neither adopts nor reads them
    assert spool.count(ROUTE) == 50
    spool.close()
