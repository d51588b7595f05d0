"""Undoing an A40 merge.

The rows the merge moved go back to the absorbed patient, which stands alone again. What was
filed on the survivor after the merge is sorted by the identifiers its message names:

- a document version added to a document that came from the absorbed patient goes back;
- a result, document or visit whose message names only the absorbed patient's identifiers
  (its local identifiers, or the INS it brought) goes back; one naming only the survivor's
  stays;
- anything else (both patients' identifiers, neither, an unreadable message) cannot be decided
  from identifiers alone: it stays where it is and its message goes to review (904) with the
  reason; the operator then attaches it to the right patient (its rows move) or leaves it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import structlog
from sqlalchemy import Connection

from engine.errors import IdentityConflict
from engine.journal import lookups
from engine.pipeline.identify import compare
from engine.pipeline.identify.review import open_review
from engine.store import identity_moves as moves
from engine.store import merges, patients

log = structlog.get_logger("engine.identity")

Side = Literal["absorbed", "survivor", "undecided"]


@dataclass(frozen=True, slots=True)
class Undone:
    merge_id: int
    #: Rows filed on the survivor since the merge and moved back to the restored patient.
    moved_back: int = 0
    #: Messages filed since the merge whose patient identifiers alone cannot tell: in review.
    to_review: int = 0


@dataclass(frozen=True, slots=True)
class _Identifiers:
    """One side's identifiers: INS values and local identifier rows (value, ns, OID)."""

    ins: frozenset[str]
    local: tuple[tuple[str, str, str], ...]


def unmerge(conn: Connection, merge_id: int, actor: str, reason: str, now: datetime) -> Undone:
    """Undo a merge (see the module's doc). Refused when the survivor changed in a way the
    undo cannot reverse."""
    row = merges.find(conn, merge_id)
    if row is None:
        raise LookupError(f"no merge {merge_id}")
    if row.undone_at is not None:
        raise ValueError(f"merge {merge_id} was already undone")
    moved = json.loads(row.moved)
    _check_reversible(conn, row, moved)
    merges.move_back(conn, moved, row.absorbed_id)
    _restore(conn, row, moved, actor, reason, now)
    done = _sort_filed_since(conn, row, moved, now)
    log.info(
        "merge_undone",
        merge_id=merge_id,
        moved_back=done.moved_back,
        to_review=done.to_review,
    )
    return done


def _restore(
    conn: Connection, row: Any, moved: dict[str, Any], actor: str, reason: str, now: datetime
) -> None:
    restored: dict[str, Any] = {"merged_into": None}
    if "ins" in moved:
        detail = {"merge_undone": row.id}
        back = moved["ins"]["before"]
        patients.change(
            conn, row.survivor_id, back, None, now, "ins_removed", detail, actor, reason
        )
        restored |= {k: moved["ins"]["after"][k] for k in ("ins", "ins_oid", "identity_status")}
    detail = {"merge_id": row.id}
    patients.change(
        conn, row.absorbed_id, restored, None, now, "merge_undone", detail, actor, reason
    )
    detail = {"merge_id": row.id, "absorbed": row.absorbed_id}
    patients.record(conn, row.survivor_id, None, now, "merge_undone", detail, actor, reason)
    merges.mark_undone(conn, row.id, now, actor, reason)


def _sort_filed_since(conn: Connection, row: Any, moved: dict[str, Any], now: datetime) -> Undone:
    """Move back what the absorbed patient's identifiers brought since the merge."""
    since = moves.filed_since(conn, row.survivor_id, row.at)
    absorbed, survivor = _identifiers(conn, row.absorbed_id), _identifiers(conn, row.survivor_id)
    lineage = moves.document_ids(conn, moved.get("documents") or [])
    decided: dict[int, Side] = {}

    def side(message_id: int | None) -> Side:
        if message_id is None:
            return "undecided"
        if message_id not in decided:
            decided[message_id] = _side_of(conn, message_id, absorbed, survivor)
        return decided[message_id]

    back = moves.FiledSince(
        [o for o in since.observations if side(o.message_id) == "absorbed"],
        [d for d in since.documents if d.document_id in lineage or _new_back(conn, row, d, side)],
        [e for e in since.encounters if side(e.message_id) == "absorbed"],
    )
    count = moves.move_all(conn, back, row.absorbed_id)
    stayed: list[moves.Filed] = []
    for filed, went in zip(_kinds(since), _kinds(back), strict=True):
        gone = set(went)
        stayed += [r for r in filed if r not in gone]
    undecided = sorted(
        {
            r.message_id
            for r in stayed
            if r.message_id is not None and decided.get(r.message_id) == "undecided"
        }
    )
    for message_id in undecided:
        _review(conn, message_id, row, now)
    return Undone(row.id, count, len(undecided))


def _kinds(rows: moves.FiledSince) -> tuple[list[Any], ...]:
    return rows.observations, rows.documents, rows.encounters


def _new_back(conn: Connection, row: Any, doc: moves.FiledDocument, side: Any) -> bool:
    """A version of a document the survivor already had before the merge stays; a new
    document follows the identifiers of its message."""
    older = moves.stored_by(conn, doc.document_id, row.at)
    return not older and side(doc.message_id) == "absorbed"


def _identifiers(conn: Connection, patient_id: int) -> _Identifiers:
    local = patients.local_ids(conn, patient_id)
    ins = patients.standing(conn, patient_id).ins
    return _Identifiers(frozenset({ins} - {""}), tuple(local))


def _side_of(
    conn: Connection, message_id: int, absorbed: _Identifiers, survivor: _Identifiers
) -> Side:
    identity = compare.message_identity(conn, message_id)
    if identity is None:
        return "undecided"

    def names(side: _Identifiers) -> bool:
        return any(i.value in side.ins for i in identity.ins) or any(
            ident.same_as(*row) for ident in identity.local_ids for row in side.local
        )

    mine, theirs = names(absorbed), names(survivor)
    if mine and not theirs:
        return "absorbed"
    if theirs and not mine:
        return "survivor"
    return "undecided"


def _review(conn: Connection, message_id: int, row: Any, now: datetime) -> None:
    channel = lookups.channel_of(conn, message_id)
    if channel is None:  # the journal no longer has it: nothing to review it with
        log.warning("unmerge_undecided_without_message", merge_id=row.id, message_id=message_id)
        return
    error = IdentityConflict(
        f"merge {row.id} undone: filed on the survivor since the merge, and its identifiers "
        "name both patients or neither: attach it to the right one",
        [row.survivor_id, row.absorbed_id],
    )
    open_review(conn, message_id, str(channel), error, now)


def _check_reversible(conn: Connection, row: Any, moved: dict[str, Any]) -> None:
    survivor = patients.standing(conn, row.survivor_id)
    if survivor.merged_into is not None:
        raise ValueError(
            f"patient {row.survivor_id} was merged into patient {survivor.merged_into} since: "
            "undo that merge first"
        )
    gone = merges.not_on(conn, moved, row.survivor_id)
    if gone is not None:
        raise ValueError(f"some {gone} the merge moved are no longer on the survivor")
    if "ins" in moved and survivor.ins != moved["ins"]["after"]["ins"]:
        raise ValueError("the survivor's INS changed since the merge (A47?): undo by hand")
