"""The table a SQL landing writes: its columns per source and key style, and their types per database.

Pure Python (no driver, no Airflow): what the table looks like is decided here, from the
documented record schemas (``records.SCHEMAS``) and nothing else, so a column's type never
depends on the values one day happens to hold.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from airflow_provider_cfbilling import records as record_tools
from airflow_provider_cfbilling.exceptions import CloudflareInputError

# Which record schemas a source's records follow. PayGo has three paths with three record shapes
# (``paygo_path``); the table of the "paygo" source has the union of their fields, so switching
# paths never changes a column's type, and a path's missing fields are NULL.
_RECORD_SCHEMAS = {"v2": ("v2",), "paygo": ("billable-usage", "paygo-usage", "paygo")}

# Documented fields whose values are JSON objects, not strings (``records`` types them "string"
# because the file sinks write them as JSON text): a JSON column where the database has one.
NESTED_FIELDS = frozenset({"Tags"})

# The operator's own columns, named in each key style. ``api`` follows FOCUS's convention for
# columns a provider adds (``x_`` prefix); none collides with a documented field in either style.
OWN_COLUMNS = {
    "api": {"row_key": "x_RowKey", "account_id": "x_AccountId", "source": "x_Source", "extra_fields": "x_ExtraFields"},
    "snake": {"row_key": "row_key", "account_id": "account_id", "source": "source", "extra_fields": "extra_fields"},
}

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def identifier(value: Any, parameter: str) -> str:
    """A plain SQL identifier (letters, digits, underscores; not starting with a digit; at most 63)."""
    if not isinstance(value, str) or not _IDENTIFIER.match(value):
        raise CloudflareInputError(
            parameter,
            f"{value!r} is not a plain SQL identifier",
            "Use letters, digits and underscores only, not starting with a digit, at most 63 characters "
            "(e.g. cloudflare_usage); the name is quoted exactly as given",
        )
    return value


def record_columns(source: str) -> list[record_tools.Column]:
    """The documented fields of ``source`` records (API spelling), each once, in documented order."""
    seen: dict[str, record_tools.Column] = {}
    for schema in _RECORD_SCHEMAS[source]:
        for column in record_tools.SCHEMAS[schema]:
            seen.setdefault(column.name, column)
    return list(seen.values())


@dataclass(frozen=True)
class SqlColumn:
    """One column of the table.

    :param name: the column's name in the table (the key style's spelling).
    :param kind: ``string``, ``number``, ``integer``, ``boolean``, ``timestamp``, ``json``, or
        ``key`` (the operator's short, indexed text columns: row key, account id, source).
    :param field: the record field it holds (API spelling); ``None`` for the operator's own columns.
    """

    name: str
    kind: str
    field: str | None = None


@dataclass(frozen=True)
class TableLayout:
    """The columns a source's table has, in order: row key, account id, source, the documented
    fields, then the JSON column of fields that have no column of their own."""

    source: str
    key_style: str
    row_key: str
    account_id: str
    source_column: str
    extra_fields: str
    charge_period_start: str
    metric: str | None
    fields: tuple[SqlColumn, ...]

    @property
    def columns(self) -> tuple[SqlColumn, ...]:
        return (
            SqlColumn(self.row_key, "key"),
            SqlColumn(self.account_id, "key"),
            SqlColumn(self.source_column, "key"),
            *self.fields,
            SqlColumn(self.extra_fields, "json"),
        )

    @property
    def required(self) -> tuple[str, ...]:
        """Columns the landing cannot do without: the key, the window's scope, the JSON column."""
        names = [self.row_key, self.account_id, self.source_column, self.charge_period_start, self.extra_fields]
        return tuple(names + ([self.metric] if self.metric else []))


def layout_for(source: str, key_style: str) -> TableLayout:
    def styled(api_name: str) -> str:
        return record_tools.snake_key(api_name) if key_style == "snake" else api_name

    own = OWN_COLUMNS[key_style]
    fields = tuple(
        SqlColumn(styled(column.name), "json" if column.name in NESTED_FIELDS else column.type, column.name)
        for column in record_columns(source)
    )
    return TableLayout(
        source=source,
        key_style=key_style,
        row_key=own["row_key"],
        account_id=own["account_id"],
        source_column=own["source"],
        extra_fields=own["extra_fields"],
        charge_period_start=styled(record_tools.CHARGE_PERIOD_START),
        metric=styled(record_tools.METRIC_ID) if source == "v2" else None,
        fields=fields,
    )


# --------------------------------------------------------------------------------------------
# Databases
# --------------------------------------------------------------------------------------------


def _pg_timestamp(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f+00" if moment.microsecond else "%Y-%m-%d %H:%M:%S+00")


def _sqlite_timestamp(moment: dt.datetime) -> str:
    # SQLite's own datetime() format, in UTC: sorts as text and works with its date functions.
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f" if moment.microsecond else "%Y-%m-%d %H:%M:%S")


def _naive_utc(moment: dt.datetime) -> dt.datetime:
    return moment.replace(tzinfo=None)


@dataclass(frozen=True)
class Dialect:
    """How one kind of database spells the table and takes its values.

    :param types: the SQL type of each column kind.
    :param timestamp: a UTC datetime as this database is sent it (in a row and as a parameter).
    :param boolean: a bool as this database is sent it.
    :param copy: rows go through PostgreSQL's ``COPY ... FROM STDIN`` (text format).
    :param transactional_ddl: ``CREATE TABLE`` / ``ALTER TABLE`` roll back with the transaction.
    """

    name: str
    types: dict[str, str]
    timestamp: Callable[[dt.datetime], Any]
    boolean: Callable[[bool], Any] = bool
    quote_char: str = '"'
    copy: bool = False
    transactional_ddl: bool = False
    indexes: bool = True
    param_timestamp: Callable[[dt.datetime], Any] | None = None

    def quote(self, name: str) -> str:
        return f"{self.quote_char}{name}{self.quote_char}"

    def qualified(self, table: str, schema: str | None) -> str:
        return f"{self.quote(schema)}.{self.quote(table)}" if schema else self.quote(table)

    def bound(self, moment: dt.datetime) -> Any:
        """A window bound as a query parameter."""
        return (self.param_timestamp or self.timestamp)(moment)


POSTGRES = Dialect(
    name="postgresql",
    types={
        "key": "TEXT",
        "string": "TEXT",
        "number": "DOUBLE PRECISION",
        "integer": "BIGINT",
        "boolean": "BOOLEAN",
        "timestamp": "TIMESTAMP WITH TIME ZONE",
        "json": "JSONB",
    },
    timestamp=_pg_timestamp,
    boolean=lambda value: "t" if value else "f",
    copy=True,
    transactional_ddl=True,
    param_timestamp=lambda moment: moment,
)
SQLITE = Dialect(
    name="sqlite",
    types={
        "key": "TEXT",
        "string": "TEXT",
        "number": "REAL",
        "integer": "INTEGER",
        "boolean": "INTEGER",
        "timestamp": "TEXT",
        "json": "TEXT",
    },
    timestamp=_sqlite_timestamp,
    boolean=int,
    transactional_ddl=True,
)
MYSQL = Dialect(
    name="mysql",
    types={
        "key": "VARCHAR(64)",
        "string": "TEXT",
        "number": "DOUBLE",
        "integer": "BIGINT",
        "boolean": "BOOLEAN",
        "timestamp": "DATETIME(6)",
        "json": "JSON",
    },
    timestamp=_naive_utc,
    quote_char="`",
    indexes=False,  # MySQL has no CREATE INDEX IF NOT EXISTS
)
GENERIC = Dialect(
    name="generic",
    types={
        "key": "VARCHAR(64)",
        "string": "TEXT",
        "number": "DOUBLE PRECISION",
        "integer": "BIGINT",
        "boolean": "BOOLEAN",
        "timestamp": "TIMESTAMP",
        "json": "TEXT",
    },
    timestamp=_naive_utc,
    indexes=False,
)

_DIALECTS = {"postgresql": POSTGRES, "postgres": POSTGRES, "sqlite": SQLITE, "mysql": MYSQL, "mariadb": MYSQL}


def dialect_for(name: str | None) -> Dialect:
    """The dialect of a common.sql hook's ``dialect_name`` (anything unknown: ANSI SQL)."""
    return _DIALECTS.get((name or "").split("+")[0].lower(), GENERIC)


def column_type(dialect: Dialect, column: SqlColumn, layout: TableLayout) -> str:
    sql_type = dialect.types[column.kind]
    if column.name == layout.row_key:
        return f"{sql_type} NOT NULL PRIMARY KEY"
    if column.kind == "key" or column.name == layout.charge_period_start:
        return f"{sql_type} NOT NULL"
    return sql_type


def create_table_sql(dialect: Dialect, layout: TableLayout, table: str, schema: str | None) -> list[str]:
    """``CREATE TABLE`` (and its window index where the database takes ``IF NOT EXISTS`` indexes)."""
    target = dialect.qualified(table, schema)
    columns = ",\n  ".join(f"{dialect.quote(c.name)} {column_type(dialect, c, layout)}" for c in layout.columns)
    statements = [f"CREATE TABLE {target} (\n  {columns}\n)"]
    if dialect.indexes:
        # The window's DELETE reads by account, source and day: an index keeps it off a full scan.
        index = f"{table[:40]}_cfbilling_window"
        scope = ", ".join(dialect.quote(name) for name in (layout.account_id, layout.source_column))
        on = f"{scope}, {dialect.quote(layout.charge_period_start)}"
        if dialect is SQLITE and schema:
            statements.append(
                f"CREATE INDEX IF NOT EXISTS {dialect.quote(schema)}.{dialect.quote(index)} "
                f"ON {dialect.quote(table)} ({on})"
            )
        else:
            statements.append(f"CREATE INDEX IF NOT EXISTS {dialect.quote(index)} ON {target} ({on})")
    return statements


def add_column_sql(dialect: Dialect, table: str, schema: str | None, column: SqlColumn) -> str:
    """A nullable column for a documented field the table lacks."""
    return (
        f"ALTER TABLE {dialect.qualified(table, schema)} ADD COLUMN {dialect.quote(column.name)} "
        f"{dialect.types[column.kind]}"
    )


__all__ = [
    "GENERIC",
    "MYSQL",
    "NESTED_FIELDS",
    "OWN_COLUMNS",
    "POSTGRES",
    "SQLITE",
    "Dialect",
    "SqlColumn",
    "TableLayout",
    "add_column_sql",
    "column_type",
    "create_table_sql",
    "dialect_for",
    "identifier",
    "layout_for",
    "record_columns",
]
