"""The ``alerts:`` section of ``channels.yaml``: rules, and where their alerts go.

Each rule has a unique name and a ``type``; rules that watch channels are checked for each
channel they name (none: every enabled channel), so one rule may raise one alert per channel.
"""

from __future__ import annotations

from datetime import time
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


RuleName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]*$", max_length=64)]
Channels = Annotated[
    tuple[str, ...], Field(description="channels watched (empty: every enabled channel)")
]


class DeadLettersRule(_Frozen):
    """More than ``count`` messages dead-lettered within the last ``minutes``."""

    type: Literal["dead_letters"]
    name: RuleName
    channels: Channels = ()
    count: int = Field(ge=1, description="fires above this many dead letters")
    minutes: float = Field(gt=0, description="the window")


class ErrorRateRule(_Frozen):
    """Of the messages received within the last ``minutes``, the share now dead-lettered or
    retrying is at least ``threshold`` (checked once ``min_messages`` have arrived)."""

    type: Literal["error_rate"]
    name: RuleName
    channels: Channels = ()
    threshold: float = Field(gt=0, le=1, description="a fraction: 0.05 is 5 %")
    minutes: float = Field(default=15, gt=0)
    min_messages: int = Field(default=20, ge=1, description="fewer: too few to judge")


class SilentRule(_Frozen):
    """No message for more than ``minutes`` on a channel, during the given hours (the "no ADT
    for 15 minutes" alarm). Hours are in ``engine.timezone``; ``from`` after ``until`` spans
    midnight."""

    type: Literal["silent"]
    name: RuleName
    channels: Channels = ()
    minutes: float = Field(gt=0)
    from_: time = Field(default=time(0, 0), alias="from", description="watched from (HH:MM)")
    until: time = Field(default=time(23, 59, 59), description="watched until (HH:MM)")
    days: tuple[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"], ...] = Field(
        default=("mon", "tue", "wed", "thu", "fri", "sat", "sun"),
        description="days watched (the day the silence is noticed)",
    )


class WaitingRule(_Frozen):
    """Messages held for their patient (902) or waiting for an identity review (903-905) for
    longer than ``minutes``."""

    type: Literal["waiting"]
    name: RuleName
    channels: Channels = ()
    state: Literal["held", "review"]
    minutes: float = Field(gt=0)


class SourceDownRule(_Frozen):
    """A channel's source is not up (not bound, or not connected to its broker)."""

    type: Literal["source_down"]
    name: RuleName
    channels: Channels = ()


class SizeRule(_Frozen):
    """The journal database, or the disk holding it, over a size."""

    type: Literal["size"]
    name: RuleName
    what: Literal["journal", "disk"] = Field(
        description="journal: the database's size; disk: the used share of its disk"
    )
    max_mb: float | None = Field(default=None, gt=0, description="journal: fires above this")
    max_percent: float | None = Field(
        default=None, gt=0, le=100, description="disk: fires above this share used"
    )

    @model_validator(mode="after")
    def _limit(self) -> Self:
        if self.what == "journal" and self.max_mb is None:
            raise ValueError("a journal size rule needs max_mb")
        if self.what == "disk" and self.max_percent is None:
            raise ValueError("a disk size rule needs max_percent")
        return self


Rule = Annotated[
    DeadLettersRule | ErrorRateRule | SilentRule | WaitingRule | SourceDownRule | SizeRule,
    Field(discriminator="type"),
]


class Webhook(_Frozen):
    """A JSON POST per alert fired or resolved."""

    url: str = Field(pattern=r"^https?://", description="http(s) URL")
    timeout_seconds: float = Field(default=5, gt=0)
    token_env: str | None = Field(
        default=None, description="environment variable holding a bearer token to send"
    )


class Email(_Frozen):
    """A mail per alert fired or resolved, through an SMTP relay."""

    smtp_host: str
    smtp_port: int = Field(default=25, ge=1, le=65535)
    starttls: bool = False
    username: str | None = None
    password_env: str | None = Field(
        default=None, description="environment variable holding the SMTP password"
    )
    sender: str = Field(alias="from", description="the From address")
    to: tuple[str, ...] = Field(min_length=1)
    timeout_seconds: float = Field(default=10, gt=0)


class Notify(_Frozen):
    log: bool = Field(default=True, description="log each alert (warning when it fires)")
    webhooks: tuple[Webhook, ...] = ()
    email: Email | None = None


class AlertsSettings(_Frozen):
    """Alert rules, evaluated every ``check_seconds``; each alert fires once and resolves once,
    and both are kept in the alert history (``aiguillage alerts``)."""

    check_seconds: float = Field(default=30, ge=1)
    notify: Notify = Field(default_factory=Notify)
    rules: tuple[Rule, ...] = ()

    @model_validator(mode="after")
    def _unique_names(self) -> Self:
        names = [r.name for r in self.rules]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"alert rule names must be unique: {', '.join(twice)}")
        return self


def alert_problems(
    alerts: AlertsSettings, channels: set[str]
) -> list[tuple[tuple[str | int, ...], str]]:
    """Rules naming a channel that ``channels.yaml`` does not define: (key, message)."""
    problems: list[tuple[tuple[str | int, ...], str]] = []
    for i, rule in enumerate(alerts.rules):
        for j, name in enumerate(getattr(rule, "channels", ())):
            if name not in channels:
                problems.append((("alerts", "rules", i, "channels", j), f"no channel {name!r}"))
    return problems
