"""Files of a watched directory, taken without ever following a link.

Whoever may drop files in an inbox must not make the engine read (and journal, and show with
``dlq show``) a file it could not read itself, nor make it move files elsewhere. So only the
directory's own entries are looked at (no path in a pattern), and an entry is refused when it is
a symbolic link, not a regular file (a FIFO, a socket, a device), or a hard link (``st_nlink >
1``: its content lives under another name too, perhaps outside the inbox). The same checks are
made again with ``fstat`` on the descriptor opened with ``O_NOFOLLOW``, so a file swapped for a
link between the scan and the read is caught. Moves into ``processed/`` and ``error/`` go
through descriptors of those directories opened with ``O_NOFOLLOW``: a link put in their place
is never followed.
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

Refusal = Literal["symlink", "not_regular", "hard_link"]

#: Opening never follows a final link, never blocks on a FIFO, never takes a terminal.
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY


class RefusedFile(Exception):
    """A file the directory source will not read."""

    def __init__(self, reason: Refusal) -> None:
        super().__init__(reason)
        self.reason: Refusal = reason


def entries(inbox: Path, pattern: str) -> Iterator[tuple[str, os.stat_result]]:
    """The names in ``inbox`` that match ``pattern`` (hidden names and directories left out),
    with their own status (``lstat``: a link's, not its target's)."""
    with os.scandir(inbox) as scan:
        for entry in scan:
            if entry.name.startswith(".") or not fnmatch.fnmatchcase(entry.name, pattern):
                continue
            st = entry.stat(follow_symlinks=False)
            if not stat.S_ISDIR(st.st_mode):
                yield entry.name, st


def refusal(st: os.stat_result) -> Refusal | None:
    """Why a file with this status is not read, or None."""
    if stat.S_ISLNK(st.st_mode):
        return "symlink"
    if not stat.S_ISREG(st.st_mode):
        return "not_regular"
    if st.st_nlink > 1:
        return "hard_link"
    return None


def read_head(path: Path, size: int) -> bytes:
    """Up to ``size`` bytes of the regular file at ``path``; :class:`RefusedFile` otherwise."""
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise RefusedFile("symlink") from exc
        if exc.errno == errno.ENXIO:  # a socket
            raise RefusedFile("not_regular") from exc
        raise
    with os.fdopen(fd, "rb") as fh:
        reason = refusal(os.fstat(fh.fileno()))
        if reason is not None:
            raise RefusedFile(reason)
        return fh.read(size)


def move_into(inbox: Path, name: str, folder: str, target: str) -> None:
    """Rename ``inbox/name`` to ``inbox/folder/target`` (a real directory, made if missing;
    a target already there is kept and the new one gets a time in its name)."""
    inbox_fd = os.open(inbox, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with contextlib.suppress(FileExistsError):
            os.mkdir(folder, dir_fd=inbox_fd)
        folder_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=inbox_fd)
        try:
            if _exists(target, folder_fd):  # the same name dropped again: keep both
                stem, dot, suffix = target.partition(".")
                target = f"{stem}.{time.time_ns()}{dot}{suffix}"
            os.replace(name, target, src_dir_fd=inbox_fd, dst_dir_fd=folder_fd)
        finally:
            os.close(folder_fd)
    finally:
        os.close(inbox_fd)


def _exists(name: str, dir_fd: int) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True
