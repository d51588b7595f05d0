"""The ``aiguillage`` command line."""

from __future__ import annotations

import asyncio
from enum import StrEnum
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Annotated

import typer

from engine.adapters.amqp_check import broker_findings
from engine.admin import record_views
from engine.admin.patients import patient_keys
from engine.admin.roles import os_principal
from engine.channels.config import ChannelsFile
from engine.channels.filing_check import unfilable_result_channels
from engine.channels.loader import ConfigError, load_channels
from engine.channels.production import production_warnings
from engine.channels.schema import write_schema
from engine.cli import (
    alerts,
    audit,
    dlq,
    identity,
    journal,
    keys,
    patient,
    patients,
    professionals,
    record,
    senders,
    stats,
    tokens,
    transform,
    users,
)
from engine.cli.common import ConfigOption, JsonOption, console, err_console, print_json
from engine.cli.output import utc_json
from engine.cli.paths import existing_database
from engine.journal import lookups as queries
from engine.journal.search import MessageFilter, matching_ids

app = typer.Typer(no_args_is_help=True, help="Aiguillage integration engine", add_completion=False)
app.add_typer(dlq.app, name="dlq")
app.add_typer(identity.app, name="identity")
app.add_typer(journal.app, name="journal")
app.add_typer(keys.app, name="keys")
app.add_typer(patient.app, name="patient")
app.add_typer(professionals.app, name="professionals")
app.add_typer(patients.app, name="patients")
app.add_typer(record.app, name="record")
app.add_typer(senders.app, name="senders")
app.add_typer(users.app, name="users")
app.add_typer(tokens.app, name="tokens")
app.add_typer(audit.app, name="audit")
app.command("transform")(transform.transform)
app.command("alerts")(alerts.alerts)
app.command("stats")(stats.stats)
app.command("retention")(record.retention)  # the issue's name for ``record retention``

CHANNELS = Path("channels.yaml")


def _version(show: bool) -> None:
    if show:
        typer.echo(f"aiguillage {package_version('aiguillage')}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="print the version"),
    ] = False,
) -> None:
    """Aiguillage integration engine."""


class RoleName(StrEnum):
    ALL = "all"
    INTAKE = "intake"
    WORKER = "worker"
    CONSOLE = "console"


@app.command()
def run(
    config: ConfigOption = CHANNELS,
    role: Annotated[
        RoleName,
        typer.Option(
            help="all: one process does everything; intake: receive, journal and hand work to "
            "RabbitMQ; worker: consume it, run the pipeline (intake and worker: PostgreSQL); "
            "console: the admin listener alone, reading the same database",
        ),
    ] = RoleName.ALL,
) -> None:
    """Start the engine with a channels file (SIGTERM or Ctrl-C stops it cleanly, SIGHUP or
    ``aiguillage reload`` reloads its channels)."""
    from engine import logs
    from engine.errors import RecordKeyError
    from engine.runtime.console import serve_console
    from engine.runtime.listeners import ListenersUnavailable, Reservation
    from engine.runtime.wiring import Engine, Role, run_worker

    settings = _load(config)
    if role is RoleName.CONSOLE and settings.engine.admin is None:
        err_console.print(f"--role console needs engine.admin in {config}", highlight=False)
        raise typer.Exit(2)
    try:
        # Every port of this role, before anything opens (even the database): all or none.
        if role is RoleName.CONSOLE:
            reservation = Reservation.take(settings, only={"the admin listener"})
        elif role is not RoleName.WORKER:  # a worker listens on nothing
            reservation = Reservation.take(settings)
        logs.configure(settings.engine.log_level, settings.engine.log_patient_data)
        if role is RoleName.WORKER:
            run_worker(settings)
        elif role is RoleName.CONSOLE:
            asyncio.run(serve_console(settings, reservation))
        else:
            kind: Role = "intake" if role is RoleName.INTAKE else "all"
            asyncio.run(Engine(settings, kind, config).serve(reservation))
    except ListenersUnavailable as exc:
        for line in exc.lines():
            err_console.print(line, highlight=False, markup=False)
        raise typer.Exit(1) from None
    except RecordKeyError as exc:  # a key file missing, or keys the sealed rows need
        err_console.print(exc.reason, highlight=False, markup=False)
        raise typer.Exit(2) from None


@app.command()
def reload(
    config: ConfigOption = CHANNELS,
    reason: Annotated[str, typer.Option(help="why, for the audit trail")] = "",
    timeout: Annotated[float, typer.Option(help="seconds to wait for the outcome")] = 60.0,
) -> None:
    """Reload the running engine's channels file: validated here first (an invalid file is
    not sent), then SIGHUP to the engine in var/aiguillage.pid beside the file; prints what
    changed. Unchanged channels keep running, changed ones restart, added ones start, removed
    ones stop (their waiting messages stay in the journal)."""
    import getpass

    from engine.admin import audit
    from engine.runtime.reload import NoRunningEngine, request_reload

    _load(config)  # exits 1 with every issue
    with existing_database(config) as conn:
        audit.record(conn, getpass.getuser(), "reload", target="channel", reason=reason)
        conn.commit()
    try:
        record = request_reload(config, timeout)
    except NoRunningEngine as exc:
        err_console.print(str(exc), highlight=False, markup=False)
        raise typer.Exit(2) from None
    if record is None:
        err_console.print(f"no outcome within {timeout:g} s: see the engine's log")
        raise typer.Exit(1)
    errors = record.get("errors")
    if isinstance(errors, list):
        for line in errors:
            err_console.print(f"reload refused: {line}", highlight=False, markup=False)
        raise typer.Exit(1)
    outcome = record.get("outcome")
    assert isinstance(outcome, dict)
    for key in ("unchanged", "restarted", "added", "removed"):
        console.print(f"{key}: {', '.join(outcome[key]) or '-'}", highlight=False, markup=False)


@app.command()
def check(
    file: Annotated[Path, typer.Argument(help="channels file")] = CHANNELS,
    offline: Annotated[
        bool, typer.Option("--offline", help="do not compare with the RabbitMQ broker")
    ] = False,
) -> None:
    """Validate a channels file (with ``engine.profile: production``, also the safety check:
    TLS beyond loopback, authenticated HTTP senders, no test INS), and compare its AMQP
    topology with what the broker has: exit 0 if valid and without conflict, else print every
    problem and exit 1."""
    try:
        config = load_channels(file)
    except ConfigError as exc:
        for issue in exc.issues:
            err_console.print(str(issue), highlight=False, markup=False)
        err_console.print(f"{len(exc.issues)} error(s)")
        raise typer.Exit(1) from exc
    checked = ", production safety check passed" if config.engine.profile == "production" else ""
    console.print(f"{file}: {len(config.channels)} channel(s), valid{checked}")
    for warning in [*unfilable_result_channels(config), *production_warnings(config)]:
        console.print(f"warning: {warning}", highlight=False, markup=False)
    findings = [] if offline else broker_findings(config)
    for f in findings:
        out = err_console if f.level == "conflict" else console
        out.print(f"{f.level}: channel {f.channel!r}: {f.message}", highlight=False, markup=False)
    conflicts = sum(f.level == "conflict" for f in findings)
    if conflicts:
        err_console.print(f"{conflicts} conflict(s) with the broker")
        raise typer.Exit(1)


@app.command()
def trace(
    term: Annotated[
        str,
        typer.Argument(
            help="message id, control id (MSH-10), or a patient: INS, local id "
            "(000003^^^CHU-X, or 000003 with --facility)"
        ),
    ],
    facility: Annotated[
        str, typer.Option(help="the facility (authority) of a plain local id")
    ] = "",
    config: ConfigOption = CHANNELS,
    json: JsonOption = False,
    payloads: Annotated[
        bool, typer.Option("--payloads", help="also print the raw and transformed messages")
    ] = False,
) -> None:
    """What happened to a message: its state, attempts and errors, and the fields transform
    steps changed for each destination (raw beside transformed)."""
    with existing_database(config) as conn:
        patient = MessageFilter(patient=patient_keys(conn, term, facility))
        rows = queries.find(conn, term, also=matching_ids(conn, patient, 100))
        for r in rows:
            r["history"] = queries.history(conn, r["id"])
            r["transformed"] = transform.journaled_forms(conn, r["id"], payloads)
        shown = [r["id"] for r in rows if r["transformed"]]  # fields printed: logged first
        record_views.log_trace(conn, os_principal(), term, facility, shown)
        conn.commit()
    if json:
        print_json(utc_json(rows))
        return
    if not rows:
        err_console.print(f"no message matches {term!r}")
        raise typer.Exit(1)
    for r in rows:
        console.print(
            f"#{r['id']} {r['channel']} {r['message_type']}^{r['trigger']} control id "
            f"{r['control_id']}: [bold]{r['state']}[/bold] after {r['attempts']} attempt(s)"
            + (f" ({r['error_code']}: {r['error_reason']})" if r["error_code"] else ""),
            highlight=False,
        )
        transform.print_forms(r["transformed"])


@app.command()
def send(
    files: Annotated[list[Path], typer.Argument(help="HL7 files (one or more messages each)")],
    host: Annotated[str, typer.Option(help="MLLP server")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="MLLP port")] = 2575,
    timeout: Annotated[float, typer.Option(help="seconds to wait for each ACK")] = 30.0,
) -> None:
    """Send HL7 files over MLLP and print each ACK code."""
    from engine.cli.send import UnreadableFile, send_files

    try:
        failures = send_files(files, host, port, timeout)
    except UnreadableFile as exc:
        err_console.print(str(exc), highlight=False, markup=False)
        raise typer.Exit(2) from exc
    except OSError as exc:
        err_console.print(f"cannot send to {host}:{port}: {exc.strerror or exc}")
        raise typer.Exit(2) from exc
    raise typer.Exit(1 if failures else 0)


@app.command()
def schema(
    output: Annotated[Path, typer.Option(help="where to write")] = Path(
        "config/channels.schema.json"
    ),
) -> None:
    """Write the JSON schema of channels.yaml (generated from the models)."""
    write_schema(output)
    console.print(f"wrote {output}")


@app.command("test")
def test_channels(
    cases: Annotated[list[Path], typer.Argument(help="channel test files (YAML)")],
) -> None:
    """Run channel tests written as data: input messages and expected outcomes. YAML files that
    are not case files (a channels file, say) are skipped; engine logs stay off the results."""
    from engine import logs
    from engine.channeltest import is_case_file, run_case_file

    logs.configure("error")  # the engine's own lines would bury the results
    passed = failed = skipped = 0
    for path in cases:
        if not is_case_file(path):
            console.print(f"skip {path}: not a channel test file", highlight=False, markup=False)
            skipped += 1
            continue
        for result in run_case_file(path):
            mark = "[green]ok[/green]" if result.ok else "[red]FAIL[/red]"
            console.print(f"{mark} {path}: {result.name}")
            for problem in result.problems:
                console.print(f"    {problem}", highlight=False, markup=False)
            passed += result.ok
            failed += not result.ok
    summary = f"{passed} passed, {failed} failed"
    console.print(summary + (f", {skipped} file(s) skipped" if skipped else ""), markup=False)
    raise typer.Exit(1 if failed or not passed else 0)


def _load(config: Path) -> ChannelsFile:
    try:
        return load_channels(config)
    except ConfigError as exc:
        for issue in exc.issues:
            err_console.print(str(issue), highlight=False, markup=False)
        raise typer.Exit(1) from exc
