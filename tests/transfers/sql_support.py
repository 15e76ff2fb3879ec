"""Reading what a SQL landing wrote, the same way from PostgreSQL and SQLite, and turning rows back
into the records Cloudflare sent (to compare with the emulator's ``expected_records``)."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from airflow_provider_cfbilling.transfers._sql_schema import layout_for

OTHER_ACCOUNT = "0123456789abcdef0123456789abcdef"
TABLE = "cloudflare_usage"


@dataclass
class Database:
    """One test database: its kind, the Airflow connection id that reaches it, and a way in."""

    kind: str  # "postgres" or "sqlite"
    conn_id: str
    server: Any = None  # PostgresServer
    dbname: str = ""
    path: str = ""

    def connect(self) -> Any:
        if self.kind == "postgres":
            return self.server.connect(self.dbname)
        connection = sqlite3.connect(self.path)
        connection.isolation_level = None
        return connection

    def execute(self, sql: str, parameters: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        connection = self.connect()
        try:
            cursor = connection.cursor()
            cursor.execute(sql, tuple(parameters))
            return list(cursor.fetchall()) if cursor.description else []
        finally:
            connection.close()

    def exists(self, table: str = TABLE) -> bool:
        if self.kind == "postgres":
            return self.execute("SELECT to_regclass(%s)", (f'"{table}"',))[0][0] is not None
        return bool(self.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (table,)))

    def columns(self, table: str = TABLE) -> list[str]:
        connection = self.connect()
        try:
            cursor = connection.cursor()
            cursor.execute(f'SELECT * FROM "{table}" WHERE 1 = 0')
            return [description[0] for description in cursor.description]
        finally:
            connection.close()

    def rows(self, table: str = TABLE, key: str = "row_key") -> list[tuple[Any, ...]]:
        """Every row, in row-key order: the whole table, to compare before and after."""
        return self.execute(f'SELECT * FROM "{table}" ORDER BY "{key}"')

    def by_key(self, table: str = TABLE, key: str = "row_key") -> dict[str, dict[str, Any]]:
        names = self.columns(table)
        return {row[names.index(key)]: dict(zip(names, row, strict=True)) for row in self.rows(table, key)}

    def records(
        self, table: str = TABLE, source: str = "v2", key_style: str = "snake", account_id: str | None = None
    ) -> list[dict[str, Any]]:
        """The table's rows as API records (API keys, timestamps as the API writes them, unknown
        fields back from the JSON column, nulls dropped), sorted for comparison."""
        layout = layout_for(source, key_style)
        api_name = {column.name: str(column.field) for column in layout.fields}
        kinds = {column.name: column.kind for column in layout.fields}
        result = []
        for row in self.by_key(table, layout.row_key).values():
            if account_id is not None and row[layout.account_id] != account_id:
                continue
            record: dict[str, Any] = {}
            for name, value in row.items():
                if name in api_name:
                    record[api_name[name]] = self._value(kinds[name], value)
            extra = self._value("json", row[layout.extra_fields]) or {}
            # A documented field the table had no column for is in the JSON column, in the key style.
            record.update({api_name.get(name, name): value for name, value in extra.items()})
            result.append({k: v for k, v in record.items() if v is not None})
        return sorted_records(result)

    @staticmethod
    def _value(kind: str, value: Any) -> Any:
        if value is None:
            return None
        if kind == "timestamp":
            if isinstance(value, str):
                value = dt.datetime.fromisoformat(value).replace(tzinfo=dt.timezone.utc)
            return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        if kind == "json" and isinstance(value, str):
            return json.loads(value)
        return value


def sorted_records(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Records without null values, numbers as floats (a DOUBLE column gives back 2.0 for 2), in a
    canonical order: compare as multisets."""
    cleaned = [{k: _number(v) for k, v in record.items() if v is not None} for record in records]
    return sorted(cleaned, key=lambda record: json.dumps(record, sort_keys=True, default=str))


def _number(value: Any) -> Any:
    return float(value) if type(value) in (int, float) else value


def expected(emulator: Any, account_id: str, start: dt.date, end: dt.date, **kwargs: Any) -> list[dict[str, Any]]:
    """What the emulator serves for ``[start, end)`` (every day), as :func:`sorted_records`."""
    return sorted_records(emulator.iter_expected_records(account_id, start, end, **kwargs))


def day(text: str) -> dt.date:
    return dt.date.fromisoformat(text)
