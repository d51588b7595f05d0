"""Who may replace or delete a stored document (DESIGN.md contract 9).

Each document version records the sender identity that filed it (``store_documents.filed_by``:
``cert:<CN>``, ``token:<name>``, or ``<channel>:<MSH-3>^<MSH-4>`` for a sender that proved
nothing). Only that identity, or one sharing an ownership group with it
(``engine.document_owner_groups``), may replace or delete the document. A version filed before
identities were recorded (``filed_by`` empty) has no known owner: any sender may replace or
delete it, and the new version records its filer, who owns the document from then on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from engine.errors import NotDocumentOwner

#: ``filed_by`` of the versions filed before sender identities were recorded.
UNKNOWN_FILER = ""


@dataclass(frozen=True, slots=True)
class OwnerGroups:
    """``engine.document_owner_groups``: group name -> identities sharing ownership."""

    groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def share(self, a: str, b: str) -> bool:
        """Whether identities ``a`` and ``b`` own the same documents."""
        return a == b or any(a in members and b in members for members in self.groups.values())


@dataclass(frozen=True, slots=True)
class Filer:
    """The sender identity a message was journaled with, filing documents."""

    identity: str
    owners: OwnerGroups = field(default_factory=OwnerGroups)

    def may_change(self, filed_by: str) -> bool:
        """Whether this filer may replace or delete a version ``filed_by`` filed."""
        return filed_by == UNKNOWN_FILER or self.owners.share(self.identity, filed_by)

    def check(self, action: str, versions: Iterable[tuple[str, str]]) -> None:
        """Raise NotDocumentOwner unless every ``(document id, filed_by)`` may be changed.
        ``action`` is ``replace`` or ``delete``; the reason names ids only."""
        refused = sorted({doc for doc, filed_by in versions if not self.may_change(filed_by)})
        if refused:
            raise NotDocumentOwner(
                f"sender {self.identity or 'unknown'!r} may not {action} document "
                f"{', '.join(refused)}: only the sender that filed it (or its ownership group) may"
            )
