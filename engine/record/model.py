"""Who reads the shared record, and the facts about one record the rules decide on."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class Role(StrEnum):
    PROFESSIONAL = "professional"
    PATIENT = "patient"
    REPRESENTATIVE = "representative"
    OPERATOR = "operator"


@dataclass(frozen=True, slots=True)
class Actor:
    """An authenticated reader: a professional (``ident`` = RPPS), the patient (``ident`` =
    INS), a legal representative (``ident`` = the INS they represent) or an operator
    (``ident`` = their name)."""

    role: Role
    ident: str
    name: str = ""
    profession: str = ""
    facility: str = ""

    @property
    def who(self) -> str:
        """What the access log names: ``rpps:…``, ``patient``, ``representative:<name>``."""
        if self.role is Role.PROFESSIONAL:
            return f"rpps:{self.ident}"
        if self.role is Role.PATIENT:
            return "patient"
        return f"{self.role.value}:{self.name or self.ident}"

    @property
    def patient_side(self) -> bool:
        return self.role in (Role.PATIENT, Role.REPRESENTATIVE)


class State(StrEnum):
    NONE = "none"  # no consent recorded: no record to show
    OPEN = "open"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class RecordFacts:
    """One patient's record settings and relations, loaded once per request."""

    patient_id: int
    ins: str
    state: State
    emergency_opposed: bool = False
    medecin_traitant: str = ""  # RPPS
    care_facilities: frozenset[str] = frozenset()  # facilities with an encounter or document
    authorised: frozenset[str] = frozenset()  # RPPS the patient authorised
    blocked: frozenset[str] = frozenset()  # RPPS the patient blocked
    emergency: dict[str, datetime] = field(default_factory=dict)  # RPPS -> access ends at
    #: The last professional who opened the record (at, actor, emergency), which the DMP shows:
    #: read with the facts, in the same round trip.
    last_professional_access: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class DocumentFacts:
    """What the masking rules need to know about one stored document."""

    author_id: str  # root^extension as stored
    masked_ps: bool  # MASQUE_PS
    invisible_patient: bool  # INVISIBLE_PATIENT
    invisible_legal_reps: bool  # INVISIBLE_REP_LEGAUX
    stored_at: datetime | None  # None in a list, where INVISIBLE_PATIENT is not set
    patient_masked: bool = False  # the patient masked it from professionals
    revealed_at: datetime | None = None  # the author lifted INVISIBLE_PATIENT
    personal: bool = False  # the patient's own document


@dataclass(frozen=True, slots=True)
class Decision:
    """Whether an actor may open a record; ``reason`` is the API's reason code when not,
    ``emergency`` when the access rests on bris de glace."""

    allowed: bool
    reason: str = ""
    emergency: bool = False
    basis: str = ""  # care_team, authorised, medecin_traitant, emergency, own_record, operator
