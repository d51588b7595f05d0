"""File destination: each message's original bytes written to a directory."""

from __future__ import annotations

import os
from pathlib import Path

from engine.cda.standalone import CdaPayload
from engine.channels.destinations import FileDestinationConfig
from engine.errors import DestinationUnavailable
from engine.pipeline.delivery import BuildContext, Delivery


def build(config: FileDestinationConfig, name: str, context: BuildContext) -> FileDestination:
    del context  # files need no deployment setting
    return FileDestination(name, config.directory)


class FileDestination:
    transactional = False

    def __init__(self, name: str, directory: Path) -> None:
        self.name = name
        self.directory = directory

    def close(self) -> None:
        """Nothing held open between messages."""

    def write(self, delivery: Delivery) -> None:
        folder = self.directory / delivery.channel
        suffix = ".xml" if isinstance(delivery.message, CdaPayload) else ".hl7"
        if delivery.kind == "business_ack":
            suffix = ".zam.hl7"
        target = folder / f"{delivery.message_id}{suffix}"
        tmp = target.with_suffix(".tmp")
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as fh:
                fh.write(delivery.raw)
                fh.flush()
                os.fsync(fh.fileno())
            # Same name for the same message: a retry or replay overwrites, never duplicates.
            os.replace(tmp, target)
        except OSError as exc:
            raise DestinationUnavailable(f"cannot write {target}: {exc.strerror}") from exc
