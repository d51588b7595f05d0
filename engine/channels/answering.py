"""What the sources that answer their senders (MLLP, HTTP) share in ``channels.yaml``: when
they answer, and the older names of that option, still read."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, model_validator

#: When a source answers its sender: once the message is journaled, or once the pipeline is
#: done with it.
AnswerAfter = Literal["commit", "processing"]


class Answering(BaseModel):
    """Renames the keys older configurations used for ``answer_after`` and
    ``answer_timeout_seconds`` (``DEPRECATED``, a table per model): they are still accepted,
    and the loader warns about them (:func:`engine.channels.sources.deprecated_keys`)."""

    #: Old key -> its name now.
    DEPRECATED: ClassVar[dict[str, str]] = {}

    @model_validator(mode="before")
    @classmethod
    def _renamed_keys(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not cls.DEPRECATED.keys() & data.keys():
            return data
        data = dict(data)
        for old, new in cls.DEPRECATED.items():
            if old not in data:
                continue
            if new in data:
                raise ValueError(f"{old!r} is the old name of {new!r}: give only {new!r}")
            data[new] = data.pop(old)
        return data
