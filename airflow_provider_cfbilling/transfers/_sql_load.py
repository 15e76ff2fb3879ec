"""One window into one table, in one transaction: check or create the table, delete the window's
rows, insert the fetched ones in batches, commit; on any failure, roll back.

Works on a plain DB-API connection (the operator gets it from a common.sql hook): PostgreSQL
rows go through ``COPY ... FROM STDIN`` (psycopg2's ``copy_expert`` or psycopg 3's
``cursor.copy``), every other database through ``executemany`` in batches.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_cfbilling.exceptions import CloudflareInputError
from airflow_provider_cfbilling.transfers._sql_keys import settled_keys
from airflow_provider_cfbilling.transfers._sql_rows import RowBuilder, copy_line
from airflow_provider_cfbilling.transfers._sql_schema import (
    POSTGRES,
    SQLITE,
    Dialect,
    TableLayout,
    add_column_sql,
    create_table_sql,
)
from airflow_provider_cfbilling.windows import Window

log = logging.getLogger(__name__)


@dataclass
class TableState:
    """What :meth:`SqlSession.prepare` found or did."""

    created: bool = False
    added_columns: list[str] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)


class SqlSession:
    """A transaction on ``connection`` for one landing; a context manager that rolls back unless
    :meth:`commit` was called, and closes the connection.

    :param placeholder: the driver's parameter marker (``%s``, ``?``), from the hook.
    """

    def __init__(
        self,
        connection: Any,
        dialect: Dialect,
        placeholder: str,
        layout: TableLayout,
        table: str,
        schema: str | None,
        logger: logging.Logger | Any = log,
    ) -> None:
        self.connection = connection
        self.dialect = dialect
        self.placeholder = placeholder
        self.layout = layout
        self.table = table
        self.schema = schema
        self.target = dialect.qualified(table, schema)
        self.log = logger
        self.committed = False
        self._begin()
        self.cursor = connection.cursor()

    # -- the transaction -------------------------------------------------------------------

    def _begin(self) -> None:
        if self.dialect is SQLITE:
            # Python's sqlite3 opens transactions by itself only before DML, and runs DDL outside
            # them: take control, and the write lock up front (no lock upgrade to fail later).
            self.connection.isolation_level = None
            self.connection.execute("BEGIN IMMEDIATE")
            return
        try:
            self.connection.autocommit = False
        except Exception:  # a driver without the attribute runs in a transaction anyway
            pass

    def commit(self) -> None:
        self.connection.commit()
        self.committed = True

    def __enter__(self) -> SqlSession:
        return self

    def __exit__(self, kind: object, error: BaseException | None, traceback: object) -> None:
        try:
            if not self.committed:
                try:
                    self.connection.rollback()
                except Exception:
                    if error is None:
                        raise
                    # The connection may be what failed: the first error is the one to report.
                    self.log.warning("Rolling back after %s failed too", type(error).__name__, exc_info=True)
        finally:
            try:
                self.cursor.close()
            finally:
                self.connection.close()

    # -- the table -------------------------------------------------------------------------

    def _exists(self) -> bool:
        if self.dialect is POSTGRES:
            self.cursor.execute("SELECT to_regclass(%s)", (self.target,))
            return self.cursor.fetchone()[0] is not None
        if self.dialect is SQLITE:
            master = f"{self.dialect.quote(self.schema)}.sqlite_master" if self.schema else "sqlite_master"
            self.cursor.execute(f"SELECT 1 FROM {master} WHERE type IN ('table', 'view') AND name = ?", (self.table,))
            return self.cursor.fetchone() is not None
        try:  # any other database: ask for no rows, and undo the failed statement if there is no table
            self.cursor.execute(f"SELECT * FROM {self.target} WHERE 1 = 0")
            self.cursor.fetchall()
            return True
        except Exception:
            self.connection.rollback()
            return False

    def _columns(self) -> list[str]:
        self.cursor.execute(f"SELECT * FROM {self.target} WHERE 1 = 0")
        self.cursor.fetchall()
        return [str(description[0]) for description in self.cursor.description or ()]

    def prepare(self, create_table: bool) -> TableState:
        """Check the table, creating it or adding documented columns it lacks when ``create_table``."""
        state = TableState()
        if not self._exists():
            if not create_table:
                raise CloudflareInputError(
                    "table",
                    f"{self.target} does not exist",
                    "Create it (see the schema in the SQL landing docs) or set create_table=True",
                )
            for statement in create_table_sql(self.dialect, self.layout, self.table, self.schema):
                self.cursor.execute(statement)
            state.created = True
            self.log.info("Created table %s (%d columns)", self.target, len(self.layout.columns))
        existing = self._columns()
        missing = [name for name in self.layout.required if name not in existing]
        if missing:
            raise CloudflareInputError(
                "table",
                f"{self.target} has no column {', '.join(missing)}; it was made by something else, or for "
                f"key_style={'api' if self.layout.key_style == 'snake' else 'snake'}",
                f"Land into a new table, or use the key_style the table was created with (columns "
                f"{', '.join(self.layout.required)})",
            )
        if create_table:
            for column in self.layout.fields:
                if column.name not in existing:
                    self.cursor.execute(add_column_sql(self.dialect, self.table, self.schema, column))
                    existing.append(column.name)
                    state.added_columns.append(column.name)
            if state.added_columns and not state.created:
                self.log.info("Added documented column(s) to %s: %s", self.target, ", ".join(state.added_columns))
        state.columns = existing
        return state

    # -- the window ------------------------------------------------------------------------

    def delete_window(self, account_id: str, window: Window, metric: str | None) -> int:
        """Delete the window's rows of this account and source (and metric): the rows it replaces."""
        quote, mark = self.dialect.quote, self.placeholder
        layout = self.layout
        sql = (
            f"DELETE FROM {self.target} WHERE {quote(layout.account_id)} = {mark} "
            f"AND {quote(layout.source_column)} = {mark} "
            f"AND {quote(layout.charge_period_start)} >= {mark} AND {quote(layout.charge_period_start)} < {mark}"
        )
        parameters: list[Any] = [
            account_id,
            layout.source,
            self.dialect.bound(window.start_timestamp),
            self.dialect.bound(window.end_timestamp),
        ]
        if metric is not None and layout.metric:
            sql += f" AND {quote(layout.metric)} = {mark}"
            parameters.append(metric)
        self.cursor.execute(sql, parameters)
        deleted = self.cursor.rowcount
        return deleted if isinstance(deleted, int) and deleted >= 0 else 0

    def insert(self, builder: RowBuilder, records: Iterable[dict[str, Any]], batch_size: int) -> int:
        """Insert the records' rows in batches of ``batch_size``; then rename the keys of rows that
        turned out to share an identity. The number of rows inserted."""
        columns = ", ".join(self.dialect.quote(name) for name in builder.columns)
        write = self._copy_writer(columns) if self.dialect.copy else None
        if write is None:
            marks = ", ".join([self.placeholder] * len(builder.columns))
            sql = f"INSERT INTO {self.target} ({columns}) VALUES ({marks})"

            def write_many(batch: list[tuple[Any, ...]]) -> None:
                self.cursor.executemany(sql, batch)

        inserted = 0
        started = time.monotonic()
        batch: list[tuple[Any, ...]] = []
        for row in builder.rows(records):
            batch.append(row)
            if len(batch) >= batch_size:
                (write or write_many)(batch)
                inserted += len(batch)
                batch = []
        if batch:
            (write or write_many)(batch)
            inserted += len(batch)
        self._settle(builder)
        self.log.info("Inserted %d rows into %s in %.1f s", inserted, self.target, time.monotonic() - started)
        return inserted

    def _copy_writer(self, columns: str) -> Any:
        sql = f"COPY {self.target} ({columns}) FROM STDIN"
        cursor = self.cursor
        if hasattr(cursor, "copy_expert"):  # psycopg2

            def copy2(batch: list[tuple[Any, ...]]) -> None:
                cursor.copy_expert(sql, io.StringIO("".join(map(copy_line, batch))))

            return copy2
        if hasattr(cursor, "copy"):  # psycopg 3

            def copy3(batch: list[tuple[Any, ...]]) -> None:
                with cursor.copy(sql) as copy:
                    copy.write("".join(map(copy_line, batch)))

            return copy3
        return None  # another driver: executemany

    def _settle(self, builder: RowBuilder) -> None:
        """Give rows whose records shared an identity their final keys, from what they store."""
        shared = builder.keys.shared
        if not shared:
            return
        quote, mark = self.dialect.quote, self.placeholder
        key = quote(self.layout.row_key)
        stored = ", ".join(quote(name) for name in builder.columns if name != self.layout.row_key)
        for identity, keys in shared.items():
            self.cursor.execute(
                f"SELECT {key}, {stored} FROM {self.target} WHERE {key} IN ({', '.join([mark] * len(keys))})", keys
            )
            rows = {row[0]: tuple(row[1:]) for row in self.cursor.fetchall()}
            final = settled_keys(identity, rows)
            self.cursor.executemany(
                f"UPDATE {self.target} SET {key} = {mark} WHERE {key} = {mark}",
                [(new, old) for old, new in final.items()],
            )
        self.log.info(
            "%d row identities were shared by several records (%d rows): keyed by their content",
            len(shared),
            sum(len(keys) for keys in shared.values()),
        )


__all__ = ["SqlSession", "TableState"]
