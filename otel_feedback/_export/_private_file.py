"""The spool's file, opened private to this user, or refused.

The spool holds what users wrote and what will be sent with the application's credentials.
Its file and directory are checked before sqlite ever opens the path (sqlite would follow a
link to another database, switch it to WAL and add its table there): a symbolic link, a file
or directory of another user, or one writable by group or others is refused. What is made
here (the file, its directories) is the owner's alone whatever the umask, and sqlite's
``-wal`` and ``-shm`` beside the file take its mode.
"""

from __future__ import annotations

import errno
import os
import stat
import sys

from otel_feedback._export._spool_errors import SpoolError

__all__ = ["open_private"]

# The file and the directory the spool makes: the owner's alone, whatever the umask.
_FILE_MODE = 0o600
_DIRECTORY_MODE = 0o700
# Bits that let other users change a file or a directory's entries.
_WRITABLE_BY_OTHERS = stat.S_IWGRP | stat.S_IWOTH
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def _refuse(path: str, reason: str) -> SpoolError:
    return SpoolError(f"{path}: refused: {reason}")


def open_private(path: str, *, make_directory: bool) -> int:
    """A descriptor of the spool's file (read-write), made private or found private.

    The directory is checked first: once it is this user's and no one else can write in
    it, no one else can put a link or a file of theirs in place of the spool between this
    check and sqlite's opening of the path. A file made here is 0600 whatever the umask, and
    the -wal and -shm sqlite makes beside it take its mode.

    Raises:
        SpoolError: the path, the file, its -wal or -shm, or its directory is refused.
        OSError: the file cannot be made or opened.
    """
    if sys.platform == "win32":  # pragma: no cover - no modes nor owners to check there
        return os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0), _FILE_MODE)
    directory, name = os.path.split(os.path.abspath(path))
    if not os.path.basename(path):
        raise _refuse(path, "it names a directory, not a file")
    if make_directory:
        _make_directories(directory)
    directory_descriptor = _open_directory(path, directory)
    try:
        descriptor = _open_file(path, name, directory_descriptor)
        try:
            for suffix in ("-wal", "-shm"):
                _check_companion(path + suffix, name + suffix, directory_descriptor)
        except BaseException:
            os.close(descriptor)
            raise
    finally:
        os.close(directory_descriptor)
    return descriptor


def _make_directories(directory: str) -> None:
    """Make ``directory`` and its missing parents, each 0700 whatever the umask."""
    missing = []
    while not os.path.lexists(directory):
        missing.append(directory)
        directory = os.path.dirname(directory)
    for made in reversed(missing):
        try:
            os.mkdir(made, _DIRECTORY_MODE)
        except FileExistsError:
            continue  # another process made it first: checked like any existing directory
        # The umask may have taken the owner's bits too; through a descriptor, so that a
        # link put in its place meanwhile is not followed.
        descriptor = os.open(made, os.O_RDONLY | os.O_DIRECTORY | _NOFOLLOW | _CLOEXEC)
        try:
            os.fchmod(descriptor, _DIRECTORY_MODE)
        finally:
            os.close(descriptor)


def _open_directory(path: str, directory: str) -> int:
    """A descriptor of the spool's directory, once found to be a private one of this user."""
    try:
        descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | _NOFOLLOW | _CLOEXEC)
    except OSError as error:
        if os.path.islink(directory):
            raise _refuse(
                path, f"its directory {directory} is a symbolic link (to {os.readlink(directory)})"
            ) from None
        if error.errno == errno.ENOTDIR:
            raise _refuse(path, f"{directory} is not a directory") from None
        raise
    try:
        status = os.fstat(descriptor)
        if status.st_uid not in (os.geteuid(), 0):
            raise _refuse(
                path,
                f"its directory {directory} is owned by another user (uid {status.st_uid}, "
                f"this process runs as uid {os.geteuid()}); that user could replace the spool",
            )
        if status.st_mode & _WRITABLE_BY_OTHERS:
            raise _refuse(
                path,
                f"its directory {directory} is writable by group or others (mode "
                f"{stat.S_IMODE(status.st_mode):04o}); they could replace the spool: put it "
                "in a directory of the application's own",
            )
    except BaseException:
        os.close(descriptor)
        raise
    return descriptor


def _open_file(path: str, name: str, directory: int) -> int:
    """The spool's file in ``directory``, made 0600 or found to be a private one of this user."""
    flags = os.O_RDWR | _NOFOLLOW | _CLOEXEC
    try:
        descriptor = os.open(name, flags | os.O_CREAT | os.O_EXCL, _FILE_MODE, dir_fd=directory)
    except FileExistsError:
        pass
    else:
        try:
            os.fchmod(descriptor, _FILE_MODE)  # the umask may have taken the owner's bits
        except BaseException:
            os.close(descriptor)
            raise
        return descriptor
    status = _checked(path, name, directory)
    # Opened after the check: O_NOFOLLOW, and a non-blocking open, refuse a link or a pipe
    # put there meanwhile (by this user: no one else can write in the directory).
    descriptor = os.open(name, flags | os.O_NONBLOCK, dir_fd=directory)
    try:
        opened = os.fstat(descriptor)
        if (opened.st_dev, opened.st_ino) != (status.st_dev, status.st_ino):
            raise _refuse(path, "the file was replaced while it was checked")
        if stat.S_IMODE(opened.st_mode) != _FILE_MODE:
            # This user's own file, readable by others (as files made under the usual umask
            # are): made private. A -wal or -shm made later takes this mode.
            os.fchmod(descriptor, _FILE_MODE)
    except BaseException:
        os.close(descriptor)
        raise
    return descriptor


def _check_companion(path: str, name: str, directory: int) -> None:
    """Check sqlite's -wal or -shm beside the spool, if there is one, and make it 0600."""
    try:
        status = _checked(path, name, directory)
    except FileNotFoundError:
        return
    if stat.S_IMODE(status.st_mode) != _FILE_MODE:
        os.chmod(name, _FILE_MODE, dir_fd=directory, follow_symlinks=False)


def _checked(path: str, name: str, directory: int) -> os.stat_result:
    """The status of ``name`` in ``directory``: a regular file of this user that only it writes.

    Raises:
        SpoolError: naming ``path`` and what is wrong.
        FileNotFoundError: there is no such file.
    """
    status = os.stat(name, dir_fd=directory, follow_symlinks=False)
    if stat.S_ISLNK(status.st_mode):
        target = os.readlink(name, dir_fd=directory)
        raise _refuse(
            path,
            f"it is a symbolic link (to {target}); sqlite would open and change what it points to",
        )
    if not stat.S_ISREG(status.st_mode):
        kind = "a directory" if stat.S_ISDIR(status.st_mode) else "not a regular file"
        raise _refuse(path, f"it is {kind}")
    if status.st_uid != os.geteuid():
        raise _refuse(
            path,
            f"it is owned by another user (uid {status.st_uid}, this process runs as uid "
            f"{os.geteuid()}); its rows would be sent with this application's credentials",
        )
    if status.st_mode & _WRITABLE_BY_OTHERS:
        raise _refuse(
            path,
            f"it is writable by group or others (mode {stat.S_IMODE(status.st_mode):04o}); "
            "its rows may have been written or deleted by another user",
        )
    if status.st_nlink > 1:
        raise _refuse(
            path, f"it has {status.st_nlink} hard links; it may be another file's database"
        )
    return status
