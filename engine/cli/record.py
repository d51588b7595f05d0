"""``aiguillage record``: integrity of stored documents and the patients' rectification
requests."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from engine.admin import audit, record_views
from engine.admin.roles import os_principal
from engine.cli.common import ConfigOption, JsonOption, console, database, err_console, print_json
from engine.store.record_integrity import verify
from engine.store.record_queries import patient_id
from engine.store.rectifications import requests

app = typer.Typer(no_args_is_help=True, help="the shared record: integrity, rectifications")


@app.command("verify")
def verify_(
    ins: Annotated[str | None, typer.Argument(help="one patient's INS (default: all)")] = None,
    config: ConfigOption = Path("channels.yaml"),
) -> None:
    """Recompute each document's SHA-256 and report any mismatch (exit 1)."""
    with database(config) as conn:
        pid = None
        if ins is not None:
            pid = patient_id(conn, ins.strip().upper())
            if pid is None:
                err_console.print(f"no patient has the INS {ins}")
                raise typer.Exit(1)
        checked, bad = verify(conn, pid)
    for m in bad:
        console.print(
            f"MISMATCH {m.table} row {m.row} ({m.document_id}): stored {m.stored}, "
            f"computed {m.computed}",
            highlight=False,
            markup=False,
        )
    console.print(f"{checked} document(s) checked, {len(bad)} mismatch(es)")
    raise typer.Exit(1 if bad else 0)


@app.command("rectifications")
def list_rectifications(
    config: ConfigOption = Path("channels.yaml"), json: JsonOption = False
) -> None:
    """Rectification requests patients made, oldest first. Their text is the patient's own
    words: each listing is in the audit trail (with the patients' ids) and, as for ``dlq
    show``, in the access log of each record shown that can be opened (a patient with an INS)."""
    with database(config) as conn:
        rows = requests(conn)
        if rows:  # the patients' words are about to be shown: on record first
            who, shown = os_principal(), sorted({x.patient_id for x in rows})
            audit.record(conn, who, "view_rectifications", target="patient", ids=shown)
            record_views.log_views(
                conn,
                who,
                record_views.patients_ins(conn, shown),
                record_views.READ_RECTIFICATIONS,
                target="rectifications",
                reason="aiguillage record rectifications",
            )
            conn.commit()
    if json:
        print_json([x._asdict() for x in rows])
        return
    table = Table("id", "patient", "by", "status", "at", "request")
    for x in rows:
        table.add_row(
            str(x.id), str(x.patient_id), x.requested_by, x.status, f"{x.at:%Y-%m-%d %H:%M}", x.text
        )
    console.print(table)


@app.command("retention")
def retention(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="report, delete nothing")] = False,
    config: ConfigOption = Path("channels.yaml"),
    json: JsonOption = False,
) -> None:
    """Purge the records closed (or of patients deceased) more than 10 years ago: documents,
    extracts, visits, personal documents, choices and access log; counts only are shown."""
    from datetime import UTC, datetime

    from engine.store.retention import due, purge

    with database(config) as conn:
        found = due(conn, datetime.now(UTC)) if dry_run else purge(conn, datetime.now(UTC))
        conn.commit()
    if json:
        print_json({"records": len(found.patients), "rows": found.rows, "dry_run": dry_run})
        return
    verb = "would be purged" if dry_run else "purged"
    console.print(f"{len(found.patients)} record(s) past their 10-year retention {verb}")
    for table, count in found.rows.items():
        console.print(f"  {table}: {count} row(s)", highlight=False)
