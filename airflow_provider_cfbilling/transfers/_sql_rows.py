"""From usage records to table rows: the row key, typed values, and the JSON of fields without a column.

Pure Python and per record, so it is kept cheap: converters are chosen once per column, values of
the documented type pass without a call, timestamp conversions are cached (a window repeats the
same few ``ChargePeriodStart`` values). PostgreSQL's ``COPY`` text format is written here too.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator
from typing import Any

from airflow_provider_cfbilling import records as record_tools
from airflow_provider_cfbilling.exceptions import CloudflareRequestError
from airflow_provider_cfbilling.transfers._sql_keys import RowKeys, canonical_json
from airflow_provider_cfbilling.transfers._sql_schema import Dialect, SqlColumn, TableLayout


class RecordFormatError(CloudflareRequestError):
    """A record's documented field holds a value of another type: the API's format has changed."""


_json_text = canonical_json


def _converter(kind: str, dialect: Dialect, field: str, endpoint: str) -> Callable[[Any], Any]:
    def refuse(value: Any) -> CloudflareRequestError:
        return RecordFormatError(
            f"A usage record's {field} is {value!r}, not a {kind} as documented; the API's record format may "
            "have changed (nothing was committed)",
            endpoint=endpoint,
        )

    if kind in ("string", "key"):
        return lambda value: value if value is None or type(value) is str else _json_text(value)
    if kind == "json":
        return lambda value: None if value is None else _json_text(value)
    if kind == "number":

        def number(value: Any) -> Any:
            if value is None or type(value) in (int, float):
                return value
            if isinstance(value, str):
                try:
                    return float(value)
                except ValueError:
                    pass
            raise refuse(value)

        return number
    if kind == "integer":

        def integer(value: Any) -> Any:
            if value is None or type(value) is int:
                return value
            if type(value) is float and value.is_integer():
                return int(value)
            if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
                return int(value)
            raise refuse(value)

        return integer
    if kind == "boolean":

        def boolean(value: Any) -> Any:
            if value is None:
                return None
            if isinstance(value, bool):
                return dialect.boolean(value)
            if isinstance(value, str) and value.lower() in ("true", "false"):
                return dialect.boolean(value.lower() == "true")
            raise refuse(value)

        return boolean
    if kind == "timestamp":
        cache: dict[Any, Any] = {}

        def timestamp(value: Any) -> Any:
            if value is None:
                return None
            try:
                return cache[value]
            except (KeyError, TypeError):
                pass
            try:
                converted = dialect.timestamp(record_tools.parse_timestamp(value))
            except (TypeError, ValueError):
                raise refuse(value) from None
            if isinstance(value, str) and len(cache) < 4096:
                cache[value] = converted
            return converted

        return timestamp
    raise AssertionError(f"unknown column kind {kind}")


_NONE = type(None)
_AS_IS: dict[str, tuple[type, ...]] = {
    "string": (str, _NONE),
    "key": (str, _NONE),
    "number": (int, float, _NONE),  # not bool: its class is bool
    "integer": (int, _NONE),
    "boolean": (_NONE,),
    "timestamp": (_NONE,),
    "json": (_NONE,),
}


class RowBuilder:
    """Turns records into rows of the columns the table has (:attr:`columns`, in that order).

    A field with a column of its own goes there, converted to the column's type; every other
    field (one Cloudflare added after this release, or a documented one the table lacks) goes
    into the JSON column, named in the key style, so nothing a record carries is lost.
    """

    def __init__(
        self,
        layout: TableLayout,
        dialect: Dialect,
        existing: Collection[str],
        account_id: str,
        endpoint: str,
    ) -> None:
        self.layout = layout
        self.keys = RowKeys(layout.source, account_id)
        self.fields: list[SqlColumn] = [column for column in layout.fields if column.name in existing]
        self.columns: list[str] = [
            layout.row_key,
            layout.account_id,
            layout.source_column,
            *(column.name for column in self.fields),
            layout.extra_fields,
        ]
        self._prefix = (account_id, layout.source)
        self._names: list[str] = [str(column.field) for column in self.fields]
        # Per column: the value types stored as they come (no call), else its converter.
        self._checks = [
            (index, _AS_IS[column.kind], _converter(column.kind, dialect, str(column.field), endpoint))
            for index, column in enumerate(self.fields)
        ]
        self._with_column = frozenset(self._names)
        self._style = record_tools.snake_key if layout.key_style == "snake" else str

    def row(self, record: dict[str, Any]) -> tuple[Any, ...]:
        values = list(map(record.get, self._names))
        for index, as_is, convert in self._checks:
            value = values[index]
            if value.__class__ not in as_is:
                values[index] = convert(value)
        with_column = self._with_column
        extra = {self._style(key): value for key, value in record.items() if key not in with_column}
        return (self.keys.key(record), *self._prefix, *values, _json_text(extra) if extra else None)

    def rows(self, records: Iterable[dict[str, Any]]) -> Iterator[tuple[Any, ...]]:
        row = self.row
        for record in records:
            yield row(record)


# PostgreSQL COPY text format: tab-separated, \N for NULL, backslash escapes.
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_cell(value: Any) -> str:
    if value is None:
        return "\\N"
    if value.__class__ is str:
        return value
    return repr(value) if value.__class__ is float else str(value)


def copy_line(row: tuple[Any, ...]) -> str:
    """One row in PostgreSQL's ``COPY`` text format (with its newline)."""
    cells = list(map(_copy_cell, row))
    line = "\t".join(cells)
    # Most rows hold nothing to escape: one backslash per NULL marker, one tab between cells.
    if line.count("\\") != row.count(None) or line.count("\t") != len(cells) - 1 or "\n" in line or "\r" in line:
        line = "\t".join(
            cell if value is None else cell.translate(_COPY_ESCAPES) for value, cell in zip(row, cells, strict=True)
        )
    return line + "\n"


__all__ = ["RecordFormatError", "RowBuilder", "copy_line"]
