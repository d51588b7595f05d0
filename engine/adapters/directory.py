"""Directory source: documents (or messages) dropped as files in a watched directory.

Every ``poll_seconds`` the directory is listed; a file matching ``pattern`` whose size and
modification time have not changed for ``settle_seconds`` is read, journaled, and only then
moved to ``processed/`` (``error/`` when intake refused it; the journal keeps it as a dead
letter either way) or deleted. A crash between the commit and the move reads the file again on
restart: the journal recognises the resend, and the file is moved without a second message.
Hidden files (``.name``) are skipped: writers should write under a hidden name, then rename.
A file is claimed by renaming it to ``.taking.<name>`` before it is read; a claimed file left by
a stopped engine goes back under its name at the next start.

A symbolic link, a hard link or anything but a regular file is refused unread (see
:mod:`engine.adapters.inbox_files`): moved to ``error/`` (whatever ``after`` says: it was not
journaled, so it is not deleted) and logged with its reason, not its name or content.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

import structlog

from engine.adapters import inbox_files
from engine.adapters.inbox_files import RefusedFile
from engine.channels.sources import DirectorySourceConfig
from engine.errors import MessageTooLarge
from engine.intake.inbox import Inbox

log = structlog.get_logger("engine.directory")

HEAD_MAX = 64 * 1024
#: The prefix of a file being taken (hidden: the scan skips it).
CLAIMED = ".taking."


@dataclass(frozen=True, slots=True)
class _Seen:
    size: int
    mtime_ns: int
    since: float
    refused: inbox_files.Refusal | None


class DirectorySource:
    def __init__(self, config: DirectorySourceConfig, inbox: Inbox) -> None:
        self.config = config
        self.inbox = inbox
        self._seen: dict[Path, _Seen] = {}
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await asyncio.to_thread(self._recover)
        self._task = asyncio.create_task(self._run())
        log.info("directory_watching", channel=self.inbox.channel, path=str(self.config.path))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _recover(self) -> None:
        """Files a stopped engine had claimed go back under their names: read again, the
        journal recognises those it had already stored."""
        self.config.path.mkdir(parents=True, exist_ok=True)
        for claimed in self.config.path.glob(f"{CLAIMED}*"):
            original = claimed.with_name(claimed.name.removeprefix(CLAIMED))
            if not os.path.lexists(original):
                os.replace(claimed, original)

    async def _run(self) -> None:
        while True:
            try:
                ready = await asyncio.to_thread(self._ready)
            except OSError as exc:  # the directory vanished or is unreadable: say so, go on
                log.error("directory_unreadable", channel=self.inbox.channel, error=exc.strerror)
                ready = []
            for path, refused in ready:
                try:
                    await self._take(path, refused)
                except OSError as exc:  # this file only: the others go on
                    log.error(
                        "directory_file_failed", channel=self.inbox.channel, error=exc.strerror
                    )
            await asyncio.sleep(self.config.poll_seconds)

    def _ready(self) -> list[tuple[Path, inbox_files.Refusal | None]]:
        """Files unchanged for ``settle_seconds``, oldest first, each with the reason it is
        refused (decided once settled: a writer may link a file in, then unlink its copy)."""
        now = time.monotonic()
        current: dict[Path, _Seen] = {}
        for name, st in inbox_files.entries(self.config.path, self.config.pattern):
            path = self.config.path / name
            refused = inbox_files.refusal(st)
            seen = self._seen.get(path)
            if seen is not None and (seen.size, seen.mtime_ns, seen.refused) == (
                st.st_size,
                st.st_mtime_ns,
                refused,
            ):
                current[path] = seen
            else:
                current[path] = _Seen(st.st_size, st.st_mtime_ns, now, refused)
        self._seen = current
        settled = [p for p, s in current.items() if now - s.since >= self.config.settle_seconds]
        settled.sort(key=lambda p: (current[p].mtime_ns, p.name))
        return [(p, current[p].refused) for p in settled]

    async def _take(self, path: Path, refused_at_scan: inbox_files.Refusal | None) -> None:
        """Claim the file (a rename: a new file dropped under the same name meanwhile is not
        taken for it; a link is renamed, never followed), journal it, then move it out. A
        failed move leaves it claimed, not taken again (nor logged again) until the engine
        restarts."""
        claimed = path.with_name(f"{CLAIMED}{path.name}")
        await asyncio.to_thread(os.replace, path, claimed)
        self._seen.pop(path, None)
        limit = self.config.max_message_bytes
        try:
            if refused_at_scan is not None:
                raise RefusedFile(refused_at_scan)
            data = await asyncio.to_thread(inbox_files.read_head, claimed, limit + 1)
        except RefusedFile as exc:  # at the scan, or swapped for a link since
            await asyncio.to_thread(self._refuse, claimed.name, path.name, exc.reason)
            return
        refused = None
        if len(data) > limit:
            refused = MessageTooLarge(f"file exceeds the {limit:,}-byte limit")
            data = data[:HEAD_MAX]
        outcome = await self.inbox.submit(data, f"file:{path.name}"[:128], refused=refused)
        if outcome.status == "unavailable":
            log.warning("directory_file_kept", channel=self.inbox.channel, reason=outcome.reason)
            await asyncio.to_thread(os.replace, claimed, path)  # taken again at the next poll
            return
        folder = "error" if outcome.status == "rejected" else "processed"
        await asyncio.to_thread(self._done, claimed, path.name, folder)

    def _refuse(self, current: str, name: str, reason: inbox_files.Refusal) -> None:
        """Move a refused file, unread, to ``error/``: not journaled, so never deleted."""
        inbox_files.move_into(self.config.path, current, "error", name)
        log.warning(
            "directory_file_refused", channel=self.inbox.channel, reason=reason, moved_to="error/"
        )

    def _done(self, claimed: Path, name: str, folder: str) -> None:
        if self.config.after == "delete":
            claimed.unlink(missing_ok=True)  # unlink removes a name, never a link's target
            return
        inbox_files.move_into(self.config.path, claimed.name, folder, name)
