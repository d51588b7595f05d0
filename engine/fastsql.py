"""Statements compiled once and run on the DBAPI cursor: the hot path's way around the
per-execution cost of SQLAlchemy (about 60 µs a statement here, against 5-10 µs for sqlite3).

The SQL text and bind processors still come from SQLAlchemy (so types, dialects and quoting
stay its business); only the per-call work is skipped. Statements run in the caller's
SQLAlchemy transaction, on its connection.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from operator import itemgetter
from typing import Any

from sqlalchemy import BigInteger, Connection, Table, bindparam, insert
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.sql import ClauseElement, ColumnElement
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import BindParameter

Processor = Callable[[Any], Any] | None

#: Rows one SQLite INSERT takes (one multi-row ``VALUES`` list): see :func:`_run_many`.
#: 64 rows of the widest table (the journal's 28 columns) bind 1,792 values, far below
#: SQLite's limit (32,766), and the statement texts stay few enough for the driver's cache.
ROWS_PER_INSERT = 64


def insert_into(table: Table, returning: ColumnElement[Any] | None = None) -> FastStatement:
    """INSERT of every column but the autoincremented primary key, with one bind per column."""
    columns: dict[str, BindParameter[Any]] = {
        c.name: bindparam(c.name) for c in table.columns if not (c.primary_key and c.autoincrement)
    }
    stmt = insert(table).values(columns)
    return FastStatement(stmt if returning is None else stmt.returning(returning))


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    #: Bind names in placeholder order for positional paramstyles (sqlite's ``?``), else None.
    positions: tuple[str, ...] | None
    processors: Mapping[str, Processor]
    #: For positional styles: the row's values in placeholder order, then the type conversions
    #: to apply, by position (most columns need none).
    getter: Callable[[Mapping[str, Any]], Any] | None
    converted: tuple[tuple[int, Callable[[Any], Any]], ...]
    defaults: Mapping[str, Any]
    #: An INSERT of one positional VALUES row, without RETURNING: many rows can go as one
    #: multi-row statement (:func:`_run_many`).
    values_rows: bool = False


class FastStatement:
    def __init__(self, statement: ClauseElement) -> None:
        self.statement = statement
        self._by_dialect: dict[str, _Compiled] = {}

    def _compiled(self, dialect: Dialect) -> _Compiled:
        compiled = self._by_dialect.get(dialect.name)
        if compiled is None:
            c = self.statement.compile(dialect=dialect)
            assert isinstance(c, SQLCompiler)
            processors = {
                name: bind.type.dialect_impl(dialect).bind_processor(dialect)
                for name, bind in ((c.bind_names[b], b) for b in c.binds.values())
            }
            positions = tuple(c.positiontup) if c.positiontup is not None else None
            getter = None
            converted: tuple[tuple[int, Callable[[Any], Any]], ...] = ()
            if positions:
                getter = itemgetter(*positions) if len(positions) > 1 else _single(positions[0])
                converted = tuple(
                    (i, p) for i, k in enumerate(positions) if (p := processors.get(k)) is not None
                )
            # Constants in the statement (``state = 'retrying'``) are binds with a value.
            defaults = {
                c.bind_names[b]: b.effective_value for b in c.binds.values() if not b.required
            }
            values_rows = bool(positions) and c.isinsert and not c.effective_returning
            compiled = _Compiled(
                str(c), positions, processors, getter, converted, defaults, values_rows
            )
            self._by_dialect[dialect.name] = compiled
        return compiled

    def _params(self, compiled: _Compiled, row: Mapping[str, Any]) -> Any:
        if compiled.defaults:
            row = {**compiled.defaults, **row}
        if compiled.getter is not None:
            values = compiled.getter(row)
            if not compiled.converted:
                return values
            out = list(values)
            for i, convert in compiled.converted:
                out[i] = convert(out[i])
            return out
        if compiled.positions is not None:  # positional, without parameters
            return ()
        procs = compiled.processors
        return {k: p(v) if (p := procs.get(k)) is not None else v for k, v in row.items()}

    def _many(self, compiled: _Compiled, rows: Sequence[Mapping[str, Any]]) -> list[Any]:
        """The parameters of each row. A value that is the very object the row before had
        there (one timestamp for a whole group commit) is not converted again."""
        if compiled.getter is None or not compiled.converted:
            return [self._params(compiled, r) for r in rows]
        return _positional(compiled, rows)

    def execute(self, conn: Connection, row: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """Run once; returns the rows it yields (``[]`` for statements without results)."""
        compiled = self._compiled(conn.dialect)
        params = self._params(compiled, row)
        cursor = _cursor(conn)
        try:
            cursor.execute(compiled.sql, params)
            return list(cursor.fetchall()) if cursor.description else []
        except conn.dialect.loaded_dbapi.Error as exc:
            raise _wrapped(conn, compiled.sql, params, exc) from exc
        finally:
            cursor.close()

    def executemany(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Run once per row (an INSERT's rows on SQLite: a few multi-row statements)."""
        compiled = self._compiled(conn.dialect)
        _run_many(conn, compiled, self._many(compiled, rows))

    def executemany_converted(
        self, conn: Connection, columns: tuple[str, ...], rows: Sequence[Sequence[Any]]
    ) -> None:
        """Run once per row, each row the values of ``columns`` already converted for the
        database (:meth:`RowsInsert.processor`, :meth:`RowsInsert.convert`): on a positional
        driver (sqlite's ``?``) whose placeholders are ``columns`` in order, the rows go to
        the driver as they are, without a mapping or a copy per row."""
        compiled = self._compiled(conn.dialect)
        if compiled.defaults:
            raise ValueError("a statement with constant binds takes mappings (executemany)")
        params: Sequence[Any]
        if compiled.positions is None:
            params = [dict(zip(columns, row, strict=True)) for row in rows]
        elif compiled.positions == columns:
            params = rows
        else:
            order = itemgetter(*(columns.index(k) for k in compiled.positions))
            params = [order(row) for row in rows]
        _run_many(conn, compiled, params)

    def executemany_returning(
        self, conn: Connection, rows: Sequence[Mapping[str, Any]]
    ) -> list[tuple[Any, ...]]:
        """Run once per row; the first row each run yields, in the order of ``rows``.

        On psycopg, one pipelined ``executemany``: a single round trip to the server for all
        the rows, instead of one per row. Elsewhere, one execution per row."""
        if conn.dialect.driver != "psycopg" or len(rows) < 2:
            return [self.execute(conn, row)[0] for row in rows]
        compiled = self._compiled(conn.dialect)
        params = self._many(compiled, rows)
        cursor = _cursor(conn)
        try:
            cursor.executemany(compiled.sql, params, returning=True)
            out = []
            while True:
                out.append(cursor.fetchone())
                if not cursor.nextset():
                    return out
        except conn.dialect.loaded_dbapi.Error as exc:
            raise _wrapped(conn, compiled.sql, params, exc) from exc
        finally:
            cursor.close()


def _positional(compiled: _Compiled, rows: Sequence[Mapping[str, Any]]) -> list[Any]:
    """Each row's values in placeholder order, converted; a value that is the very object the
    row before had there is converted once."""
    assert compiled.getter is not None
    last: dict[int, tuple[Any, Any]] = {}
    out = []
    for row in rows:
        if compiled.defaults:
            row = {**compiled.defaults, **row}
        values = list(compiled.getter(row))
        for i, convert in compiled.converted:
            value = values[i]
            seen = last.get(i)
            if seen is None or seen[0] is not value:
                seen = last[i] = (value, convert(value))
            values[i] = seen[1]
        out.append(values)
    return out


#: Rows from which a :class:`RowsInsert` copies rather than pipelines its INSERTs: COPY waits
#: for the server twice (start, end) where a pipelined executemany waits once, but costs the
#: client about 3 µs a row against 25.
COPY_FROM = 8


class RowsInsert:
    """Many rows into a table (every column but the autoincremented key), in the caller's
    transaction.

    On psycopg, one ``COPY ... FROM STDIN``: a pipelined ``executemany`` still binds and sends
    each row as a statement of its own (about 25 µs of client CPU a row, measured), a COPY
    streams them (about 3 µs a row in the binary format, 9 in text), and the server sees one
    statement. Binary when the driver knows every column's type (the table's types, as
    SQLAlchemy names them on PostgreSQL: the migrations test keeps them the database's), else
    text. The rows get their ids in the order given, as with the INSERTs. Elsewhere (SQLite),
    and for a few rows, one ``executemany``.
    """

    def __init__(self, table: Table) -> None:
        self.insert = insert_into(table)
        self._table = table
        self._copy: tuple[_Compiled, tuple[str, ...] | None] | None = None
        self._todo: dict[
            tuple[str, tuple[str, ...]], tuple[tuple[int, Callable[[Any], Any]], ...]
        ] = {}
        #: The order of a row's values for :meth:`run_converted`.
        self.columns = tuple(
            c.name for c in table.columns if not (c.primary_key and c.autoincrement)
        )

    def processor(self, dialect: Dialect, column: str) -> Callable[[Any], Any] | None:
        """The conversion :meth:`run` applies to ``column``'s values on ``dialect`` (None:
        the value goes as it is)."""
        return self.insert._compiled(dialect).processors.get(column)

    def convert(
        self, dialect: Dialect, rows: list[Sequence[Any]], done: tuple[str, ...] = ()
    ) -> list[Sequence[Any]]:
        """``rows`` (values of :attr:`columns`) with the conversions of the columns not in
        ``done`` applied; ``rows`` itself when no other column has one (the usual case: a
        caller converts the few typed columns itself, once per distinct value)."""
        todo = self._todo.get((dialect.name, done))
        if todo is None:
            processors = self.insert._compiled(dialect).processors
            todo = self._todo[dialect.name, done] = tuple(
                (i, p)
                for i, k in enumerate(self.columns)
                if k not in done and (p := processors.get(k)) is not None
            )
        if not todo:
            return rows
        out: list[Sequence[Any]] = []
        for row in rows:
            values = list(row)
            for i, convert in todo:
                values[i] = convert(values[i])
            out.append(values)
        return out

    def run_converted(self, conn: Connection, rows: Sequence[Sequence[Any]]) -> None:
        """As :meth:`run`, for rows of :attr:`columns` values already converted
        (:meth:`processor`, :meth:`convert`): no mapping, conversion or copy per row here."""
        if conn.dialect.driver != "psycopg" or len(rows) < COPY_FROM:
            self.insert.executemany_converted(conn, self.columns, rows)
            return
        self._copy_rows(conn, lambda _compiled: rows)

    def run(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        if conn.dialect.driver != "psycopg" or len(rows) < COPY_FROM:
            self.insert.executemany(conn, rows)
            return
        self._copy_rows(conn, lambda compiled: _positional(compiled, rows))

    def _copy_rows(
        self, conn: Connection, values_of: Callable[[_Compiled], Sequence[Sequence[Any]]]
    ) -> None:
        """COPY the rows ``values_of`` gives for the compiled statement (PostgreSQL)."""
        cursor = _cursor(conn)
        compiled, types = self._copy_statement(conn.dialect, cursor)
        values = values_of(compiled)
        try:
            with cursor.copy(compiled.sql) as copy:
                if types is not None:
                    copy.set_types(types)
                for row in values:
                    copy.write_row(row)
        except conn.dialect.loaded_dbapi.Error as exc:
            raise _wrapped(conn, compiled.sql, values, exc) from exc
        finally:
            cursor.close()

    def _copy_statement(
        self, dialect: Dialect, cursor: Any
    ) -> tuple[_Compiled, tuple[str, ...] | None]:
        if self._copy is None:
            processors = self.insert._compiled(dialect).processors
            positions = tuple(
                c.name for c in self._table.columns if not (c.primary_key and c.autoincrement)
            )
            types = _driver_types(self._table, positions, dialect, cursor)
            names = ", ".join(dialect.identifier_preparer.quote(n) for n in positions)
            table = dialect.identifier_preparer.format_table(self._table)
            binary = " (FORMAT BINARY)" if types is not None else ""
            compiled = _Compiled(
                sql=f"COPY {table} ({names}) FROM STDIN{binary}",
                positions=positions,
                processors=processors,
                getter=itemgetter(*positions) if len(positions) > 1 else _single(positions[0]),
                converted=tuple(
                    (i, p) for i, k in enumerate(positions) if (p := processors.get(k)) is not None
                ),
                defaults={},
            )
            self._copy = (compiled, types)
        return self._copy


def _driver_types(
    table: Table, columns: tuple[str, ...], dialect: Dialect, cursor: Any
) -> tuple[str, ...] | None:
    """The PostgreSQL type names of ``columns`` for a binary COPY; None when the driver does
    not know one of them (the COPY is then in text, where the server parses every value)."""
    known = cursor.adapters.types
    names = []
    for column in columns:
        type_ = table.c[column].type.dialect_impl(dialect)
        name = dialect.type_compiler_instance.process(type_).split("(")[0].strip().lower()
        name = _ALIASES.get(name, name)
        if known.get(name) is None:
            return None
        names.append(name)
    return tuple(names)


#: SQLAlchemy's names of PostgreSQL types where psycopg knows them by another.
_ALIASES = {"varchar": "character varying"}


def id_binds(width: int) -> list[BindParameter[int]]:
    """``width`` binds of ids (``i0``, ``i1``...) for ``id IN (...)``: one statement, compiled
    once and prepared once, for any number of ids up to ``width`` (see :func:`id_chunks`)."""
    return [bindparam(f"i{n}", type_=BigInteger()) for n in range(width)]


def id_chunks(ids: Sequence[int], width: int) -> Iterator[dict[str, int | None]]:
    """The parameters of :func:`id_binds` for ``ids``, ``width`` at a time; places left
    unused are NULL (``id IN (.., NULL)`` matches nothing more)."""
    for start in range(0, len(ids), width):
        chunk = ids[start : start + width]
        yield {f"i{n}": chunk[n] if n < len(chunk) else None for n in range(width)}


def _wrapped(conn: Connection, sql: str, params: Any, exc: Exception) -> StatementError:
    """The driver's error as SQLAlchemy's (OperationalError, IntegrityError...), as the rest of
    the engine expects: the same types whichever path ran the statement."""
    dbapi_error = conn.dialect.loaded_dbapi.Error
    return DBAPIError.instance(sql, params, exc, dbapi_error, dialect=conn.dialect)


def _cursor(conn: Connection) -> Any:
    """A DBAPI cursor inside the connection's SQLAlchemy transaction (begun here if need be, so
    that SQLAlchemy's own BEGIN, e.g. SQLite's BEGIN IMMEDIATE, opens it)."""
    if not conn.in_transaction():
        conn.begin()
    return conn.connection.cursor()


def _single(key: str) -> Callable[[Mapping[str, Any]], tuple[Any]]:
    return lambda row: (row[key],)


def _executemany(conn: Connection, sql: str, params: Any) -> None:
    cursor = _cursor(conn)
    try:
        cursor.executemany(sql, params)
    except conn.dialect.loaded_dbapi.Error as exc:
        raise _wrapped(conn, sql, params, exc) from exc
    finally:
        cursor.close()


def _run_many(conn: Connection, compiled: _Compiled, params: Sequence[Any]) -> None:
    """The statement once per row of ``params``, in their order.

    An INSERT's rows on SQLite (``values_rows``) go ``ROWS_PER_INSERT`` a statement, as one
    multi-row ``VALUES`` list: the driver's ``executemany`` steps the statement once a row,
    and releases the GIL and takes it back each time, where an event loop in another thread
    holds it most of the time; so each row waited for it (issue 11: intake's group commit,
    measured). Otherwise one ``executemany`` (psycopg pipelines it)."""
    sql = compiled.sql
    if not compiled.values_rows or conn.dialect.name != "sqlite" or len(params) < 2:
        _executemany(conn, sql, params)
        return
    cursor = _cursor(conn)
    try:
        for start in range(0, len(params), ROWS_PER_INSERT):
            chunk = params[start : start + ROWS_PER_INSERT]
            cursor.execute(_values_sql(sql, len(chunk)), [v for row in chunk for v in row])
    except conn.dialect.loaded_dbapi.Error as exc:
        raise _wrapped(conn, sql, params, exc) from exc
    finally:
        cursor.close()


@lru_cache(maxsize=4 * ROWS_PER_INSERT)
def _values_sql(sql: str, rows: int) -> str:
    """``sql`` (an INSERT of one VALUES row) with ``rows`` VALUES rows."""
    head, values, row = sql.rpartition(" VALUES ")
    return head + values + ", ".join([row] * rows)


def raw(conn: Connection, sql: str) -> None:
    """A parameterless statement on the DBAPI cursor (e.g. SAVEPOINT)."""
    cursor = _cursor(conn)
    try:
        cursor.execute(sql)
    except conn.dialect.loaded_dbapi.Error as exc:
        raise _wrapped(conn, sql, (), exc) from exc
    finally:
        cursor.close()
