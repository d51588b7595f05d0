"""``aiguillage patient show INS``: a patient's whole record, read by an operator through the
shared record's access layer (logged in the patient's access log)."""

from __future__ import annotations

import getpass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from engine.cli.common import ConfigOption, JsonOption, console, database, err_console, print_json
from engine.record.model import Actor, Role
from engine.store.record import patient_record
from engine.store.record_access import Refused, open_for

app = typer.Typer(no_args_is_help=True, help="Read the record store")


@app.command()
def show(
    ins: Annotated[str, typer.Argument(help="the patient's INS (NIR or NIA, 15 characters)")],
    json: JsonOption = False,
    config: ConfigOption = Path("channels.yaml"),
) -> None:
    """Identity, documents newest first, and the last results of the patient holding INS."""
    ins = ins.strip().upper()
    with database(config) as conn:
        # Operators read through the access layer too, and leave a line in the access log.
        try:
            opened = open_for(conn, Actor(Role.OPERATOR, getpass.getuser()), ins, datetime.now(UTC))
        except Refused:
            err_console.print(f"no patient has the INS {ins}")
            raise typer.Exit(1) from None
        record = patient_record(conn, ins)
        opened.log(conn, "read_record", reason="aiguillage patient show")
        conn.commit()
    assert record is not None
    if json:
        print_json(record)
        return
    _identity(record)
    _documents(record["documents"])
    _summary(record["summary"])
    _results(record["results"])
    _reimbursements(record["reimbursements"])


def _identity(r: dict[str, Any]) -> None:
    names = r["birth_name"] + (f" (used: {r['used_name']})" if r["used_name"] else "")
    console.print(f"[bold]{names}[/bold], {r['given_names'] or r['first_given_name']}")
    born = _date(r["birth_date"])
    console.print(f"born {born}, sex {r['sex'] or '?'}, birth place {r['birth_place'] or '?'}")
    console.print(
        f"INS {r['ins']} ({r['ins_oid']}), identity {r['identity_status'] or 'not qualified'}"
    )
    for ident in r["identifiers"]:
        where = ident["authority"] or ident["authority_oid"]
        console.print(f"  {ident['type_code'] or 'id'} {ident['value']} ({where})", highlight=False)


def _documents(rows: list[dict[str, Any]]) -> None:
    table = Table("date", "type", "title", "author", "level", "status", title="Documents")
    for d in rows:
        flags = " masked" if d["masked_ps"] else ""
        table.add_row(
            _date(d["effective_time"]),
            f"{d['type_code']} {d['type_label']}".strip(),
            d["title"],
            d["author_name"] or d["facility"],
            d["level"],
            f"{d['status']}{flags}",
        )
    _print(table, rows)


_KINDS = ("problem", "allergy", "treatment", "vaccination", "risk_factor")
_PLURALS = {
    "problem": "Problems",
    "allergy": "Allergies",
    "treatment": "Treatments",
    "vaccination": "Vaccinations",
    "risk_factor": "Risk factors",
}


def _summary(rows: list[dict[str, Any]]) -> None:
    """Problems, allergies, treatments, vaccinations and risk factors from the documents."""
    for kind in _KINDS:
        entries = [r for r in rows if r["kind"] == kind]
        if not entries:
            continue
        table = Table("since", "what", "code", "until", title=_PLURALS[kind])
        for e in entries:
            table.add_row(_date(e["start"]), e["label"] or e["text"], e["code"], _date(e["end"]))
        console.print(table)


def _reimbursements(rows: list[dict[str, Any]]) -> None:
    """Reimbursements of the last 24 months (the DMP's window), newest first."""
    cutoff = (datetime.now(UTC) - timedelta(days=730)).strftime("%Y%m%d")
    recent = [r for r in rows if not r["date"] or r["date"][:8] >= cutoff]  # undated: shown
    table = Table("date", "category", "what", "quantity", "prescriber", title="Reimbursements")
    for r in recent:
        table.add_row(
            _date(r["date"]), r["category"], r["label"] or r["code"], r["quantity"], r["prescriber"]
        )
    older = len(rows) - len(recent)
    if recent or not older:
        _print(table, recent)
    else:
        console.print("Reimbursements: none in the last 24 months", highlight=False)
    if older:
        console.print(
            f"({older} reimbursement(s) older than 24 months, the DMP's window, not shown)",
            highlight=False,
        )


def _results(rows: list[dict[str, Any]]) -> None:
    table = Table("date", "test", "value", "unit", "range", "flag", title="Last results")
    for o in rows:
        table.add_row(
            _date(o["observed_ts"]),
            o["code_text"] or o["code"],
            o["value"],
            o["unit"],
            o["reference_range"],
            o["abnormal_flags"],
        )
    _print(table, rows)


def _print(table: Table, rows: list[dict[str, Any]]) -> None:
    """The table, or one line saying there is nothing (an empty grid reads as a fault)."""
    if rows:
        console.print(table)
    else:
        console.print(f"{table.title}: none", highlight=False)


def _date(ts: str) -> str:
    """``YYYY-MM-DD`` of an HL7 timestamp (as written), or the text itself."""
    digits = ts[:8]
    return f"{digits[:4]}-{digits[4:6]}-{digits[6:8]}" if len(digits) == 8 else ts
