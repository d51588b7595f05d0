"""``aiguillage identity``: the identity-review queue and notices, held messages, merges,
probable duplicates (:mod:`engine.cli.identity_duplicates`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from sqlalchemy import select

from engine.admin import audit, record_views
from engine.admin.roles import os_principal
from engine.cli import identity_duplicates
from engine.cli.common import (
    ConfigOption,
    JsonOption,
    acting_operator,
    console,
    database,
    err_console,
    hand_over,
    print_json,
)
from engine.cli.output import print_table, utc_json, zone
from engine.cli.paths import existing_database
from engine.journal.journal import utcnow
from engine.journal.message_tables import State, messages
from engine.localtime import age_text, local_text
from engine.pipeline.identify import compare, review
from engine.pipeline.identify.unmerge import unmerge

app = typer.Typer(no_args_is_help=True, help="Patient identity: conflicts to review, merges")

app.add_typer(identity_duplicates.app, name="duplicates")

OperatorOption = identity_duplicates.OperatorOption


@app.command()
def conflicts(
    all_: Annotated[bool, typer.Option("--all", help="resolved ones too")] = False,
    notices: Annotated[
        bool, typer.Option("--notices", help="with the notices for the identity cell (homonym)")
    ] = False,
    json: JsonOption = False,
    config: ConfigOption = Path("channels.yaml"),
) -> None:
    """Messages waiting for an identity decision (903, 904, 905), oldest first; with
    --notices, the identity cell's notices too (homonym: close them with identity dismiss)."""
    with database(config) as conn:
        found = review.reviews(conn, None if all_ else review.OPEN)
    rows = [r for r in found if notices or r["code"] != review.HOMONYM]
    if json:
        print_json(rows)
        return
    table = Table("id", "kind", "message", "channel", "code", "status", "candidates", "reason")
    for r in rows:
        table.add_row(
            str(r["id"]),
            "notice" if r["code"] == review.HOMONYM else "conflict",
            str(r["message_id"]),
            r["channel"],
            r["code"],
            r["status"],
            ", ".join(map(str, r["candidates"])),
            r["reason"],
        )
    console.print(table)
    console.print(f"{len(rows)} review(s)")
    hidden = len(found) - len(rows)
    if hidden:
        console.print(f"{hidden} notice(s) for the identity cell: identity conflicts --notices")


@app.command()
def show(review_id: int, config: ConfigOption = Path("channels.yaml")) -> None:
    """The message's identity beside each stored patient involved; differences in red."""
    with database(config) as conn:
        row = review.review(conn, review_id)
        if row is None:
            err_console.print(f"no identity review {review_id}")
            raise typer.Exit(1)
        # Patient traits are about to be shown: on record first.
        audit.record(conn, os_principal(), "view_traits", target="review", ids=[review_id])
        shown = record_views.patients_ins(conn, row["candidates"])
        shown += record_views.message_patients(conn, row["message_id"])
        record_views.log_views(
            conn,
            os_principal(),
            shown,
            record_views.COMPARE_IDENTITY,
            target=f"review:{review_id}",
            reason="aiguillage identity show",
        )
        conn.commit()
        identity = compare.message_identity(conn, row["message_id"])
        stored = [compare.patient_column(conn, p) for p in row["candidates"]]
    console.print(
        f"review {review_id}: message {row['message_id']} ({row['channel']}), "
        f"code {row['code']}, {row['status']}: {row['reason']}",
        highlight=False,
    )
    columns = [compare.message_column(identity)] if identity else []
    columns += [c for c in stored if c is not None]
    table = Table("trait", *(c.title for c in columns))
    differ = (
        set().union(*(compare.differing(columns[0], c) for c in columns[1:])) if columns else set()
    )
    for name in compare.ROWS:
        cells = [c.values.get(name, "") for c in columns]
        style = "bold red" if name in differ else None
        table.add_row(name, *cells, style=style)
    console.print(table)
    if differ:
        console.print(f"differing: {', '.join(sorted(differ))}", highlight=False)


@app.command()
def resolve(
    review_id: int,
    reason: Annotated[str, typer.Option(help="why (kept with the decision)")],
    patient: Annotated[int | None, typer.Option(help="attach the message to this patient")] = None,
    reject: Annotated[bool, typer.Option("--reject", help="end the message for good")] = False,
    operator: OperatorOption = None,
    config: ConfigOption = Path("channels.yaml"),
) -> None:
    """Settle a review: --patient P files the message under P (it is replayed), or --reject."""
    if (patient is None) == (not reject):
        err_console.print("give either --patient P or --reject")
        raise typer.Exit(2)
    actor = acting_operator(reason, operator)
    with database(config) as conn:
        try:
            if patient is not None:
                done = review.attach(conn, review_id, patient, actor, reason, utcnow())
            else:
                done = review.reject(conn, review_id, actor, reason, utcnow())
        except (LookupError, ValueError) as exc:
            err_console.print(str(exc))
            raise typer.Exit(1) from exc
        detail = {"message_id": done.message_id, "patient_id": patient, "operator": actor}
        audit.record(
            conn,
            os_principal(),
            "resolve",
            target="review",
            ids=[review_id],
            reason=reason,
            detail=detail,
        )
        conn.commit()
        if done.replayed:
            hand_over(config, conn, [done.message_id])
    what = "rejected"
    if patient is not None:
        what = f"attached to patient {patient}, " + (
            "replayed" if done.replayed else f"{done.moved} filed row(s) moved"
        )
    console.print(f"review {review_id} (message {done.message_id}): {what} by {actor}")


@app.command()
def dismiss(
    review_id: int,
    reason: Annotated[str, typer.Option(help="why (kept with the notice)")],
    operator: OperatorOption = None,
    config: ConfigOption = Path("channels.yaml"),
) -> None:
    """Close a notice (homonym) the identity cell has seen."""
    actor = acting_operator(reason, operator)
    with database(config) as conn:
        try:
            review.dismiss(conn, review_id, actor, reason, utcnow())
        except (LookupError, ValueError) as exc:
            err_console.print(str(exc))
            raise typer.Exit(1) from exc
        conn.commit()
    console.print(f"notice {review_id} dismissed by {actor}")


@app.command()
def held(json: JsonOption = False, config: ConfigOption = Path("channels.yaml")) -> None:
    """Messages held until their patient is known (902), oldest first, with their age."""
    m = messages.c
    with existing_database(config) as conn:
        rows = [
            dict(r._mapping)
            for r in conn.execute(
                select(m.id, m.channel, m.received_at, m.message_type, m.trigger, m.control_id)
                .where(m.state == State.HELD)
                .order_by(m.id)
            )
        ]
    if json:
        print_json(utc_json(rows))
        return
    tz = zone(config)
    table = Table("id", "channel", "received", "age", "type", "control id")
    for r in rows:
        table.add_row(
            str(r["id"]),
            r["channel"],
            local_text(r["received_at"], tz),
            age_text(r["received_at"]),
            f"{r['message_type'] or '?'}^{r['trigger'] or '?'}",
            r["control_id"] or "",
        )
    if rows:
        print_table(table)
    console.print(f"{len(rows)} held message(s)")


@app.command("unmerge")
def unmerge_(
    merge_id: int,
    reason: Annotated[str, typer.Option(help="why (kept with the merge)")],
    operator: OperatorOption = None,
    config: ConfigOption = Path("channels.yaml"),
) -> None:
    """Undo an A40 merge: the absorbed patient gets back what the merge moved and what its
    identifiers brought since; what they cannot decide goes to review (904)."""
    actor = acting_operator(reason, operator)
    with database(config) as conn:
        try:
            done = unmerge(conn, merge_id, actor, reason, utcnow())
        except (LookupError, ValueError) as exc:
            err_console.print(str(exc))
            raise typer.Exit(1) from exc
        audit.record(
            conn,
            os_principal(),
            "unmerge",
            target="merge",
            ids=[merge_id],
            reason=reason,
            detail={"operator": actor},
        )
        conn.commit()
    console.print(f"merge {merge_id} undone by {actor}")
    if done.moved_back:
        console.print(
            f"{done.moved_back} row(s) filed since the merge through the restored patient's "
            "identifiers moved back to it"
        )
    if done.to_review:
        console.print(
            f"{done.to_review} message(s) filed since the merge name both patients or neither: "
            "in review (904), see identity conflicts"
        )
