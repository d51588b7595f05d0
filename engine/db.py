"""Database engines and the shared SQLAlchemy metadata (journal and record store)."""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import Connection, MetaData, create_engine, event, make_url
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

log = structlog.get_logger("engine.db")

DEFAULT_URL = "sqlite:///var/aiguillage.db"
URL_ENV = "AIGUILLAGE_DATABASE_URL"

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
    }
)


def database_url(configured: str | None = None) -> str:
    """``AIGUILLAGE_DATABASE_URL`` wins over the configured URL, which wins over the default."""
    return os.environ.get(URL_ENV) or configured or DEFAULT_URL


def make_engine(url: str, *, durability: str = "full", **kwargs: Any) -> Engine:
    """An engine with the settings the journal's durability relies on.

    SQLite runs in WAL mode; ``durability="full"`` (``synchronous=FULL``) makes a committed
    transaction survive a power loss, ``"normal"`` only a process crash (contract 1 asks for the
    latter at least). Foreign keys are enforced. The database file (and the directories made
    for it) are private to the engine's user: see :func:`private_database_file`.
    """
    if url.startswith("sqlite"):
        path = make_url(url).database
        if path and path != ":memory:" and not path.startswith("file:"):
            private_database_file(Path(path))
        engine = create_engine(
            url, connect_args={"timeout": 30, "check_same_thread": False}, **kwargs
        )
        synchronous = {"full": "FULL", "normal": "NORMAL"}[durability]

        def on_connect(dbapi_conn: Any, record: Any) -> None:
            _sqlite_pragmas(dbapi_conn, synchronous)
            record.info[_SYNCHRONOUS] = synchronous

        event.listen(engine, "connect", on_connect)
        event.listen(engine, "begin", _sqlite_begin_immediate)
        return engine
    # Given in the URL, a libpq parameter wins over ours.
    ours = {k: v for k, v in POSTGRES_CONNECT.items() if k not in make_url(url).query}
    return create_engine(url, pool_pre_ping=True, connect_args=ours, **kwargs)


#: libpq parameters of every PostgreSQL connection: a server that does not answer is given up
#: on (connect_timeout: the whole connection set-up, s), and a dead peer or a network cut is
#: noticed on an idle connection (keepalives: after 10 s idle, 3 probes 5 s apart) and on a busy
#: one (tcp_user_timeout: data unacknowledged for 20 s, ms) instead of the kernel's minutes.
POSTGRES_CONNECT: dict[str, int] = {
    "connect_timeout": 5,
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 20_000,
}


def database_where(url: str) -> str:
    """The database as logs name it: ``host:port/dbname`` (never the user or password), or the
    SQLite file."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return parsed.database or ":memory:"
    return f"{parsed.host or 'localhost'}:{parsed.port or 5432}/{parsed.database or ''}"


#: (reason, SQLSTATE codes, words of the driver's message), first match wins. The words are
#: matched, never logged: a message may quote data.
_REASONS: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("auth", ("28P01", "28000"), ("password authentication failed", "pg_hba.conf")),
    ("unknown_database", ("3D000",), ('" does not exist',)),
    ("starting_up", (), ("is starting up", "not yet accepting connections", "recovery mode")),
    ("shut_down", ("57P01", "57P02"), ("shutting down", "administrator command", "crash of")),
    ("timeout", ("57014",), ("timeout expired", "timed out", "statement timeout")),
    ("refused", (), ("connection refused", "could not connect", "no such file or directory")),
    ("too_many_connections", ("53300",), ("too many clients", "too many connections")),
    ("read_only", ("25006",), ("readonly database", "read-only")),
    ("locked", (), ("database is locked", "database table is locked")),
    ("disk_full", ("53100",), ("disk is full", "no space left")),
    ("cannot_open", (), ("unable to open database file",)),
    ("disconnected", (), ("closed the connection", "connection is closed", "connection is lost")),
)


def outage_reason(exc: BaseException) -> str:
    """Why the database failed, in one word: refused, shut_down, starting_up, timeout, auth,
    read_only, locked, disk_full... (``error`` when none fits)."""
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    code = str(getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None) or "")
    text = str(orig).lower()
    for reason, codes, words in _REASONS:
        if code in codes or any(w in text for w in words):
            return reason
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return "disconnected"
    return "error"


def is_outage(exc: BaseException) -> bool:
    """The database (or the way to it) failed, not the statement: a lost or refused connection,
    a timeout, a locked, read-only or full database."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, OperationalError | InterfaceError | PoolTimeout)


def private_database_file(path: Path) -> None:
    """Make ``path`` (a SQLite database, which holds patient data) readable by its owner only.

    Missing directories are made 0700 and a missing file 0600; SQLite gives its ``-wal`` and
    ``-shm`` files the database file's mode. A file of ours (or its ``-wal``/``-shm``) that
    others can read, as older versions made them, is tightened to 0600 and the change logged;
    one owned by another user is only logged. Existing directories are left as they are (they
    may be shared, e.g. ``/var/lib``).
    """
    missing = [p for p in (path.parent, *path.parent.parents) if not p.exists()]
    for directory in reversed(missing):
        directory.mkdir(mode=0o700, exist_ok=True)
    with contextlib.suppress(FileExistsError):  # made by an earlier run, or another process
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        _tighten(file)


def _tighten(file: Path) -> None:
    try:
        st = file.stat()
    except FileNotFoundError:
        return
    mode = stat.S_IMODE(st.st_mode)
    if not mode & 0o077:
        return
    if st.st_uid != os.geteuid():  # not ours to change: say so, leave the owner's choice
        log.warning("database_file_readable_by_others", file=str(file), mode=oct(mode))
        return
    os.chmod(file, mode & 0o700)
    log.warning("database_file_tightened", file=str(file), was=oct(mode), now=oct(mode & 0o700))


_READS_ONLY = "aiguillage_reads_only"
#: Execution options of a connection that only reads (``conn.execution_options(**READS_ONLY)``):
#: on SQLite its transactions do not take the write lock (see ``_sqlite_begin_immediate``).
READS_ONLY = {_READS_ONLY: True}

#: The ``synchronous`` setting of a SQLite connection, in its pool record's info.
_SYNCHRONOUS = "aiguillage_synchronous"


@contextlib.contextmanager
def unsynced_commits(conn: Connection) -> Iterator[bool]:
    """Within the block, ``conn``'s commits do not wait for the disk when that loses no
    promise: on SQLite with ``durability: full``, the block runs with ``synchronous=NORMAL``
    (it yields True then; elsewhere False and changes nothing). Enter it outside a
    transaction: SQLite refuses to change the setting inside one.

    For the pipeline's batches, whose end states no sender waits for: in WAL mode such a
    commit is atomic and visible at once, and it becomes durable with the next synced commit
    of any connection (intake's, each ACKed batch: one ``fdatasync`` flushes the whole WAL
    file) or the next checkpoint. A power loss before that takes the batch back: its messages
    are ``received`` again and run again (idempotent, as after a crash before the commit).

    On the way out, an open transaction is rolled back and ``synchronous=FULL`` restored; a
    connection where that fails is invalidated, never pooled relaxed (intake commits on the
    same pool must stay synced)."""
    if conn.info.get(_SYNCHRONOUS) != "FULL":
        yield False
        return
    dbapi = conn.connection.dbapi_connection
    assert dbapi is not None
    dbapi.execute("PRAGMA synchronous=NORMAL")
    try:
        yield True
    finally:
        try:
            if conn.in_transaction():
                conn.rollback()
            dbapi.execute("PRAGMA synchronous=FULL")
        except Exception:
            conn.invalidate()
            raise


def _sqlite_pragmas(dbapi_conn: Any, synchronous: str) -> None:
    # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin (see below).
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute(f"PRAGMA synchronous={synchronous}")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def _sqlite_begin_immediate(conn: Any) -> None:
    # Take the write lock when the transaction starts: a WAL reader that upgrades to a writer
    # after another connection committed fails with SQLITE_BUSY at once, whatever the timeout.
    # On the driver's connection: through SQLAlchemy's execution path this one statement cost
    # 120 µs a transaction under cProfile, 45 µs this way (issue 11: a one-message intake
    # commit). A failure is raised as SQLAlchemy's error (OperationalError...), as that path
    # raised it.
    # A connection given READS_ONLY begins a plain (deferred) transaction: it never takes
    # the write lock, and a WAL reader does not wait for writers.
    begin = "BEGIN" if conn.get_execution_options().get(_READS_ONLY) else "BEGIN IMMEDIATE"
    dbapi = conn.dialect.loaded_dbapi
    try:
        conn.connection.dbapi_connection.execute(begin)
    except dbapi.Error as exc:
        raise DBAPIError.instance(begin, (), exc, dbapi.Error, dialect=conn.dialect) from exc
