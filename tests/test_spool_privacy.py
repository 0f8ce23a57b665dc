"""The spool is private: 0600 files in a directory of the user's own; anything else is refused.

The tests run as root here: another user's file or directory is made with ``os.chown``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import stat
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from opentelemetry.sdk.trace import TracerProvider

from otel_feedback import (
    Feedback,
    FeedbackSpanProcessor,
    InMemoryFeedbackExporter,
    record_feedback,
)
from otel_feedback._export.spool import Spool, SpoolError

pytestmark = pytest.mark.skipif(os.name != "posix", reason="file modes and owners are POSIX")

OTHER_USER = 65534  # nobody


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def _records(count: int) -> list[Feedback]:
    now = datetime.now(timezone.utc)
    return [
        Feedback(id=uuid4(), created_at=now, modified_at=now, key="k", comment="private")
        for _ in range(count)
    ]


@pytest.fixture
def umask() -> Iterator[Callable[[int], object]]:
    """Sets the process's umask for the test; the one before is put back after."""
    before = os.umask(0o022)
    os.umask(before)
    try:
        yield os.umask
    finally:
        os.umask(before)


@pytest.fixture
def sqlite_opens(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every path sqlite is asked to open during the test."""
    opened: list[str] = []
    connect = sqlite3.connect

    def recording(database: str, **options: Any) -> sqlite3.Connection:
        opened.append(str(database))
        connection: sqlite3.Connection = connect(database, **options)
        return connection

    monkeypatch.setattr(sqlite3, "connect", recording)
    return opened


@pytest.mark.parametrize("mask", [0o022, 0o000, 0o777], ids=lambda m: f"umask {m:03o}")
def test_the_spool_and_its_wal_and_shm_are_0600_in_a_0700_directory_whatever_the_umask(
    tmp_path: Path, umask: Callable[[int], object], mask: int
) -> None:
    directory = tmp_path / "state" / "app"  # neither exists yet
    path = directory / "feedback.sqlite"
    umask(mask)
    spool = Spool(str(path), max_records=100, max_age_s=60)
    assert spool.put(_records(3), ["route"]) == 3
    files = [path, Path(f"{path}-wal"), Path(f"{path}-shm")]
    try:
        assert all(f.exists() for f in files)  # WAL mode, open: all three are there
        assert {f.name: _mode(f) for f in files} == {f.name: 0o600 for f in files}
        assert _mode(directory) == 0o700
        assert _mode(directory.parent) == 0o700
    finally:
        spool.close()


def test_an_own_spool_readable_by_others_is_made_private(
    tmp_path: Path, umask: Callable[[int], object]
) -> None:
    # As a spool made before files were 0600 was: the user's own, mode 0644.
    path = tmp_path / "feedback.sqlite"
    umask(0o022)
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("CREATE TABLE unrelated (x)")
    assert _mode(path) == 0o644
    spool = Spool(str(path), max_records=100, max_age_s=60)
    spool.put(_records(1), ["route"])
    try:
        assert _mode(path) == 0o600
        assert _mode(Path(f"{path}-wal")) == 0o600
        assert _mode(Path(f"{path}-shm")) == 0o600
    finally:
        spool.close()


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _refused(path: Path, reason: str, sqlite_opens: list[str]) -> None:
    sqlite_opens.clear()  # the test's own databases
    with pytest.raises(SpoolError) as refused:
        Spool(str(path), max_records=100, max_age_s=60)
    assert str(path) in str(refused.value)
    assert reason in str(refused.value)
    assert sqlite_opens == []  # refused before sqlite was asked to open anything


def _database(path: Path) -> Path:
    """An sqlite database of the application's own, not a spool (rollback journal mode)."""
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE accounts (name TEXT)")
        connection.execute("INSERT INTO accounts VALUES ('kept')")
    connection.close()
    return path


def _tables(path: Path) -> list[str]:
    with sqlite3.connect(path) as connection:
        names = [row[0] for row in connection.execute("SELECT name FROM sqlite_master")]
    connection.close()
    return names


def test_a_symlink_at_the_spool_path_is_refused_and_its_target_left_alone(
    tmp_path: Path, sqlite_opens: list[str]
) -> None:
    target = _database(tmp_path / "app.sqlite")
    before = _digest(target)
    spool_directory = tmp_path / "spool"
    spool_directory.mkdir(mode=0o700)
    link = spool_directory / "feedback.sqlite"
    link.symlink_to(target)
    _refused(link, "symbolic link", sqlite_opens)
    assert _digest(target) == before
    assert not Path(f"{target}-wal").exists()
    assert _tables(target) == ["accounts"]  # no spool table added, still not in WAL mode


def test_a_dangling_symlink_at_the_spool_path_is_refused_and_nothing_is_made(
    tmp_path: Path, sqlite_opens: list[str]
) -> None:
    target = tmp_path / "elsewhere.sqlite"
    link = tmp_path / "feedback.sqlite"
    link.symlink_to(target)
    _refused(link, "symbolic link", sqlite_opens)
    assert not target.exists()


def test_a_directory_that_is_a_symlink_is_refused(tmp_path: Path, sqlite_opens: list[str]) -> None:
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    link = tmp_path / "spool"
    link.symlink_to(real)
    _refused(link / "feedback.sqlite", "is a symbolic link", sqlite_opens)
    assert list(real.iterdir()) == []


@pytest.mark.parametrize("suffix", ["-wal", "-shm"])
def test_a_symlink_planted_as_the_wal_or_shm_is_refused(
    tmp_path: Path, suffix: str, sqlite_opens: list[str]
) -> None:
    target = _database(tmp_path / "app.sqlite")
    before = _digest(target)
    directory = tmp_path / "spool"
    directory.mkdir(mode=0o700)
    path = directory / "feedback.sqlite"
    Path(f"{path}{suffix}").symlink_to(target)
    _refused(path, "symbolic link", sqlite_opens)
    assert _digest(target) == before


@pytest.mark.skipif(os.geteuid() != 0, reason="making another user's file needs root")
def test_a_spool_file_of_another_user_is_refused(tmp_path: Path, sqlite_opens: list[str]) -> None:
    # Another local user made it first, with a forged row: sending it would send their record
    # with this application's credentials.
    path = tmp_path / "feedback.sqlite"
    spool = Spool(str(path), max_records=100, max_age_s=60)
    spool.put(_records(1), ["route"])
    spool.close()
    os.chmod(path, 0o600)
    os.chown(path, OTHER_USER, OTHER_USER)
    before = _digest(path)
    _refused(path, f"owned by another user (uid {OTHER_USER}", sqlite_opens)
    assert _digest(path) == before


@pytest.mark.skipif(os.geteuid() != 0, reason="making another user's directory needs root")
def test_a_directory_of_another_user_is_refused(tmp_path: Path, sqlite_opens: list[str]) -> None:
    directory = tmp_path / "theirs"
    directory.mkdir(mode=0o755)
    os.chown(directory, OTHER_USER, OTHER_USER)
    _refused(directory / "feedback.sqlite", "owned by another user", sqlite_opens)
    assert list(directory.iterdir()) == []


@pytest.mark.parametrize("mode", [0o666, 0o620, 0o602], ids=lambda m: f"mode {m:04o}")
def test_a_spool_file_writable_by_group_or_others_is_refused(
    tmp_path: Path, mode: int, sqlite_opens: list[str]
) -> None:
    path = tmp_path / "feedback.sqlite"
    Spool(str(path), max_records=100, max_age_s=60).close()
    os.chmod(path, mode)
    _refused(path, f"writable by group or others (mode {mode:04o})", sqlite_opens)
    assert _mode(path) == mode


@pytest.mark.parametrize("mode", [0o777, 0o1777, 0o770, 0o757], ids=lambda m: f"mode {m:04o}")
def test_a_directory_writable_by_group_or_others_is_refused(
    tmp_path: Path, mode: int, sqlite_opens: list[str]
) -> None:
    # /tmp itself (1777) among them: anyone can plant a file or a link there first.
    directory = tmp_path / "shared"
    directory.mkdir()
    os.chmod(directory, mode)
    _refused(directory / "feedback.sqlite", "writable by group or others", sqlite_opens)
    assert list(directory.iterdir()) == []


def test_a_spool_file_with_another_name_is_refused(tmp_path: Path, sqlite_opens: list[str]) -> None:
    # A hard link: the same database under two names, perhaps one the application uses.
    target = _database(tmp_path / "app.sqlite")
    before = _digest(target)
    link = tmp_path / "feedback.sqlite"
    os.link(target, link)
    _refused(link, "2 hard links", sqlite_opens)
    assert _digest(target) == before


def test_a_directory_at_the_spool_path_is_refused(tmp_path: Path, sqlite_opens: list[str]) -> None:
    (tmp_path / "feedback.sqlite").mkdir()
    _refused(tmp_path / "feedback.sqlite", "it is a directory", sqlite_opens)


def test_the_processor_runs_on_without_a_refused_spool_and_says_why(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    target = _database(tmp_path / "app.sqlite")
    before = _digest(target)
    link = tmp_path / "feedback.sqlite"
    link.symlink_to(target)
    memory = InMemoryFeedbackExporter()
    provider = TracerProvider()
    with caplog.at_level(logging.WARNING, logger="otel_feedback"):
        processor = FeedbackSpanProcessor(memory, spool_path=link)
        provider.add_span_processor(processor)
        with provider.get_tracer("t").start_as_current_span("run"):
            record_feedback("k", score=1)
        assert processor.force_flush(10_000)  # the spool is opened, and refused, meanwhile
        provider.shutdown()
    assert len(memory.get_finished_feedback()) == 1
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert str(link) in warnings[0]
    assert "symbolic link" in warnings[0]
    assert "running without one" in warnings[0]
    assert _digest(target) == before
