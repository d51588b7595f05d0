"""Typed models of ``channels.yaml``.

Every model is frozen and forbids unknown keys; cross-references (routes naming destinations,
unique channel names and listening ports) are checked here, at load time, before any socket
opens (STYLE.md §3).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    model_validator,
)

from engine.channels.admin_settings import AdminSettings
from engine.channels.alert_settings import AlertsSettings
from engine.channels.amqp_settings import AmqpConnection
from engine.channels.destinations import DestinationConfig
from engine.channels.journal_retention import JournalRetention
from engine.channels.record_api_settings import RecordApiSettings
from engine.channels.record_retention import RetentionSettings
from engine.channels.sources import SourceConfig
from engine.localtime import DEFAULT_TIMEZONE, TimeZoneName
from engine.routes.conditions import Condition
from engine.security.key_settings import EncryptionSettings
from engine.transforms.user.python_step import PLUGINS_DIR, PythonStep
from engine.transforms.user.steps import TransformStep


class Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class FilterStep(Frozen):
    """Keep or drop messages; a dropped message ends in state ``filtered``."""

    type: Literal["filter"]
    keep: Condition | None = Field(default=None, description="keep only matching messages")
    drop: Condition | None = Field(default=None, description="drop matching messages")

    @model_validator(mode="after")
    def _one_of(self) -> Self:
        if (self.keep is None) == (self.drop is None):
            raise ValueError("a filter step needs exactly one of 'keep' or 'drop'")
        return self


class ValidateStep(Frozen):
    """Structural validation of the message against its HL7 v2 definition (hl7apy)."""

    type: Literal["validate"]
    profile: Literal["hl7apy_strict", "hl7apy_tolerant"] = Field(
        default="hl7apy_tolerant",
        description="strict: every HL7 rule; tolerant: structure and required segments",
    )


Step = Annotated[
    FilterStep | ValidateStep | TransformStep | PythonStep, Field(discriminator="type")
]
#: What a route may do to its own copy of the message.
RouteStep = Annotated[TransformStep | PythonStep, Field(discriminator="type")]


class Route(Frozen):
    """Send messages matching ``when`` to the named destinations."""

    when: Condition = Field(default_factory=Condition, description="empty: every message")
    to: tuple[str, ...] = Field(min_length=1, description="destination names")
    steps: tuple[RouteStep, ...] = Field(
        default=(),
        description="transform or python steps for these destinations only, after the "
        "channel's steps (a destination named by several routes takes the first one's form)",
    )


class Backoff(Frozen):
    initial_seconds: float = Field(default=1.0, gt=0)
    multiplier: float = Field(default=2.0, ge=1)
    max_seconds: float = Field(default=300.0, gt=0)


class ErrorPolicy(Frozen):
    """Transient errors are retried with backoff; then, like permanent errors, dead-lettered."""

    max_attempts: int = Field(default=8, ge=1, description="attempts before dead-lettering")
    backoff: Backoff = Field(default_factory=Backoff)


class BusinessAck(Frozen):
    """Send the CI-SIS business acknowledgement ZAM^Z01 for each message carrying CDA
    documents: ``Y`` once filed, ``N`` with the error when refused (not while it waits for its
    patient). A failure to send it is logged and never fails the message."""

    send_to: tuple[str, ...] = Field(
        min_length=1,
        description="destinations of this channel that carry it (e.g. an mllp destination)",
    )
    application: str = Field(default="AIGUILLAGE", description="MSH-3 of the ZAM")


class ChannelConfig(Frozen):
    name: str = Field(
        pattern=r"^[a-z][a-z0-9_-]*$", max_length=64, description="unique, snake_case"
    )
    enabled: bool = True
    description: str = ""
    source: SourceConfig
    accept: tuple[str, ...] = Field(
        min_length=1,
        description='accepted MSH-9 type^trigger, e.g. "ADT^A01"; "ORU^*"; "*" for any',
    )
    steps: tuple[Step, ...] = ()
    destinations: dict[str, DestinationConfig] = Field(min_length=1)
    routes: tuple[Route, ...] = Field(
        default=(), description="default: every message to every destination"
    )
    errors: ErrorPolicy = Field(default_factory=ErrorPolicy)
    business_ack: BusinessAck | None = Field(
        default=None, description="ZAM^Z01 for MDM and ORU carrying CDA documents"
    )

    @model_validator(mode="after")
    def _document_channel(self) -> Self:
        """A channel receiving CDA documents alone has no HL7 fields to test or validate."""
        if self.source.payload != "cda":
            return self
        if not any(p == "*" or p.startswith("CDA^") for p in self.accept):
            raise ValueError(
                'a channel receiving CDA documents accepts "CDA^<type code>" or "CDA^*"'
            )
        if any(isinstance(s, ValidateStep) for s in self.steps):
            raise ValueError(
                "the validate step checks HL7 v2 messages; documents are checked by the "
                "record store's `documents` settings"
            )
        edits = (*self.steps, *(s for r in self.routes for s in r.steps))
        if any(isinstance(s, TransformStep | PythonStep) for s in edits):
            raise ValueError("transform and python steps edit HL7 v2 messages, not documents")
        conditions: list[Condition | None] = [r.when for r in self.routes]
        conditions += [s.keep or s.drop for s in self.steps if isinstance(s, FilterStep)]
        if any(c is not None and not c.documents_only for c in conditions):
            raise ValueError(
                "documents are routed and filtered by message_types (CDA^<type code>) only"
            )
        return self

    @model_validator(mode="after")
    def _business_ack_carrier(self) -> Self:
        """The ZAM goes back to the sender, not into the record store."""
        ack = self.business_ack
        stores = [n for n in ack.send_to if _is_store(self.destinations.get(n))] if ack else []
        if stores:
            raise ValueError(
                f"business_ack.send_to names the record store {stores[0]!r}: send the ZAM "
                "through an mllp (or file) destination"
            )
        return self

    def effective_routes(self) -> tuple[Route, ...]:
        """The routes, or by default every destination but those carrying the business
        acknowledgement (they answer the sender: the message itself must not go there)."""
        if self.routes:
            return self.routes
        carriers = set(self.business_ack.send_to) if self.business_ack else set()
        targets = tuple(n for n in self.destinations if n not in carriers)
        return (Route(to=targets),) if targets else ()


def _is_store(destination: DestinationConfig | None) -> bool:
    return destination is not None and destination.type == "record_store"


class IdentitySettings(Frozen):
    accept_test_ins: bool = Field(
        default=False,
        description=(
            "accept INS with the test (1.2.250.1.213.1.4.10) and demo (.11) OIDs; a "
            "production deployment refuses them"
        ),
    )


class WorkSettings(Frozen):
    """The distributed deployment (``aiguillage run --role intake|worker``): intake processes
    hand each journaled message to ``queue``; worker processes consume it, run the pipeline and
    write the record store (PostgreSQL: one database shared by every process)."""

    broker: AmqpConnection = Field(default_factory=AmqpConnection)
    queue: str = Field(default="aiguillage.work", description="work items (a quorum queue)")
    prefetch: int = Field(default=256, ge=1, le=65535)
    batch: int = Field(default=64, ge=1, description="work items per worker transaction")
    sweep_seconds: float = Field(
        default=1.0, gt=0, description="how often a worker looks for due retries"
    )
    stale_seconds: float = Field(
        default=30.0,
        gt=0,
        description="a journaled message without a work item this long (broker down at intake, "
        "a replay) is taken by the sweep",
    )


class EngineSettings(Frozen):
    profile: Literal["demo", "production"] = Field(
        default="demo",
        description=(
            "production: `aiguillage check` refuses a listener beyond loopback without TLS, an "
            "HTTP source without authentication and accepted test INS"
        ),
    )
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; AIGUILLAGE_DATABASE_URL overrides it"
    )
    durability: Literal["full", "normal"] = Field(
        default="full",
        description="SQLite synchronous mode: full survives power loss, normal a process crash",
    )
    pipeline: Literal["process", "thread"] = Field(
        default="thread",
        description=(
            "thread: in the receiving process, between journal commits; process: in a "
            "process of its own, with its own core (measured in bench/RESULTS.md)"
        ),
    )
    pipeline_share: float = Field(
        default=0.0,
        ge=0,
        lt=1,
        description=(
            "thread: the share of the writer thread the pipeline is owed while intake keeps it "
            "busy (0: intake first, the pipeline gets what intake leaves; 0.5 doubles what is "
            "filed during sustained intake at about a fifth of intake's rate, bench/RESULTS.md)"
        ),
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    timezone: TimeZoneName = DEFAULT_TIMEZONE
    log_patient_data: bool = Field(
        default=False, description="debug only: allow payloads and names in logs"
    )
    commit_timeout_seconds: float = Field(
        default=5.0,
        gt=0,
        description=(
            "a message the journal cannot commit in this time is answered AE (CE in enhanced "
            "mode; 503 over HTTP): send it again, it is never stored twice"
        ),
    )
    document_owner_groups: dict[str, tuple[str, ...]] = Field(
        default_factory=dict,
        description=(
            "sender identities that share the ownership of the documents any of them filed "
            "(e.g. a lab's two interfaces): group name -> identities such as "
            "'cert:lab.example.fr', 'token:lab-a', 'mllp:hospital_hl7:LAB^SITE'"
        ),
    )
    identity: IdentitySettings = Field(default_factory=IdentitySettings)
    encryption: EncryptionSettings | None = Field(
        default=None,
        description="encryption at rest of document bytes in the record store (AES-GCM); off "
        "when absent, unless AIGUILLAGE_RECORD_KEY is set",
    )
    admin: AdminSettings | None = Field(
        default=None,
        description="the admin listener: console, operations API, /metrics (off when absent)",
    )
    record_api: RecordApiSettings | None = Field(
        default=None,
        description="the record listener for professionals and patients (off when absent)",
    )
    plugins_dir: Path | None = Field(
        default=None,
        description="the folder of the modules python steps name (relative: to the working "
        "directory)",
    )
    work: WorkSettings = Field(default_factory=WorkSettings)
    retention: RetentionSettings = Field(
        default_factory=RetentionSettings,
        description="the daily purge of records past their 10-year retention (on by default)",
    )
    journal_retention: JournalRetention = Field(
        default_factory=JournalRetention,
        description="pruning of delivered, filtered and discarded messages past a retention",
    )


class ChannelsFile(Frozen):
    """The whole file. Cross-references are checked by the loader
    (:mod:`engine.channels.references`), so that each problem is reported at its own key."""

    engine: EngineSettings = Field(default_factory=EngineSettings)
    channels: tuple[ChannelConfig, ...] = Field(min_length=1)
    alerts: AlertsSettings = Field(default_factory=AlertsSettings)

    @model_validator(mode="wrap")
    @classmethod
    def _with_plugins_dir(cls, data: Any, handler: ModelWrapValidatorHandler[Self]) -> Self:
        """Python steps load their module from engine.plugins_dir while they are checked."""
        engine = data.get("engine") if isinstance(data, dict) else None
        folder = engine.get("plugins_dir") if isinstance(engine, dict) else None
        if isinstance(engine, EngineSettings):
            folder = engine.plugins_dir
        token = PLUGINS_DIR.set(Path(folder) if isinstance(folder, str | Path) else None)
        try:
            return handler(data)
        finally:
            PLUGINS_DIR.reset(token)
