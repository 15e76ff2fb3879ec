"""CSV and Parquet: stable schemas (documented columns typed, undocumented ones as text)."""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Sequence
from contextlib import suppress
from datetime import date, datetime
from decimal import Decimal
from typing import IO, TYPE_CHECKING, Any

from airflow_provider_cfbilling.records import REDACTED, SCHEMAS, Column, parse_timestamp, snake_key
from airflow_provider_cfbilling.sinks.encoding import _encode_json, _json_default, _Spool
from airflow_provider_cfbilling.sinks.storage import _CountingWriter

if TYPE_CHECKING:
    pass


log = logging.getLogger(__name__)


_PARQUET_HINT = "pip install 'airflow-provider-cfbilling[parquet]'"


# ---- column types (CSV and Parquet) --------------------------------------------------------

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
# The Python types a documented column's values may have to be written as they are (timestamp
# strings are parsed once per distinct value, to check them). Anything else takes the slow path.
_AS_IS: dict[str, frozenset[type]] = {
    "number": frozenset({float, int, type(None)}),
    "integer": frozenset({int, type(None)}),
    "boolean": frozenset({bool, type(None)}),
    "timestamp": frozenset({str, type(None)}),
}
_MISFIT = object()


def _exact(value: Any, kind: str) -> Any:
    """``value`` as documented type ``kind`` (a timestamp as an aware UTC ``datetime``) where that
    type holds it, ``None`` for null and the redaction marker, else ``_MISFIT``."""
    value_type = type(value)
    if value is None or (value_type is str and value == REDACTED):
        return None
    if kind == "integer":
        if value_type is float and value.is_integer():
            value, value_type = int(value), int
        if value_type is int and _INT64_MIN <= value <= _INT64_MAX:
            return value
    elif kind == "number":
        if value_type is float or value_type is int or value_type is Decimal:
            with suppress(OverflowError):
                return float(value)  # what a JSON number is to any reader
    elif kind == "boolean":
        if value_type is bool:
            return value
    elif kind == "timestamp" and isinstance(value, (str, date)):
        with suppress(ValueError, OverflowError):
            return parse_timestamp(value)
    return _MISFIT


def _is_timestamp(value: str) -> bool:
    return _exact(value, "timestamp") not in (_MISFIT, None)


def _source_of(columns: Sequence[Column]) -> str | None:
    """The record source whose documented columns these are, in either key style."""
    names = [column.name for column in columns]
    for source, schema in SCHEMAS.items():
        if names in ([column.name for column in schema], [snake_key(column.name) for column in schema]):
            return source
    return None


class _Schema:
    """The columns of a CSV or Parquet object and the check of documented values.

    ``columns``: ``(name, type)``, the documented columns in order, then the window's other keys,
    sorted, as ``string``. Types come from the documentation only, never from the values.
    """

    def __init__(self, documented: Sequence[Column], keys: list[str], uri: str) -> None:
        types = {column.name: column.type for column in documented}
        self.columns: list[tuple[str, str]] = [*types.items(), *((key, "string") for key in keys if key not in types)]
        self.names = [name for name, _kind in self.columns]
        # (index, name, type) of the columns whose values are checked.
        self.checked = [(index, name, kind) for index, (name, kind) in enumerate(self.columns) if kind != "string"]
        self._documented = documented
        self._uri = uri

    def conform(self, values: list[Any], name: str, kind: str, *, strict: bool = False) -> list[Any]:
        """The values to write in the non-string documented column ``name`` (type ``kind``).

        Values of the expected Python types come back as they are (the same list); others are
        converted (see :func:`_exact`; timestamps keep their text). ``strict`` converts every
        value, for values Arrow refused. Raises ``ValueError`` for a value the documented type does
        not hold: the record format changed, and the column's type does not.
        """
        if (
            not strict
            and set(map(type, values)) <= _AS_IS[kind]
            and (kind != "timestamp" or all(map(_is_timestamp, set(values) - {None})))
            and (kind != "integer" or max(map(abs, filter(None, values)), default=0) <= _INT64_MAX)
        ):
            return values
        fitted = [_exact(value, kind) for value in values]
        for value, fit in zip(values, fitted, strict=True):
            if fit is _MISFIT:
                raise self._misfit(name, kind, value)
        if kind == "timestamp":  # checked; the text as the API sent it
            return [None if fit is None else value for value, fit in zip(values, fitted, strict=True)]
        return fitted

    def _misfit(self, name: str, kind: str, value: Any) -> ValueError:
        source = _source_of(self._documented)
        shown = repr(value) if len(repr(value)) <= 200 else repr(value)[:200] + "..."
        return ValueError(
            f"Cannot write {self._uri}: column {name!r} of {source or 'these'} records is documented as "
            f"{kind}, but a record has {shown} ({type(value).__name__}): the API's record format has "
            f"changed. Nothing was written (a previous object is untouched), because the column keeps "
            f"its documented type in every partition. Land this window as JSON Lines (records as "
            f"sent) until airflow-provider-cfbilling supports the new format, and report it."
        )


def _as_text(value: Any) -> str:
    """A non-string value as text: JSON for numbers, booleans and nested values; ISO for dates."""
    if isinstance(value, str):
        return str.__str__(value)  # a str subclass (an enum member, say): its plain text
    if isinstance(value, (datetime, date)):
        return str(_json_default(value))
    if isinstance(value, Decimal):
        return str(value)
    return _encode_json(value)


# ---- CSV -----------------------------------------------------------------------------------


def _csv_cell(value: Any) -> Any:
    kind = type(value)
    if kind is str or kind is int or kind is float or value is None:
        return value  # None is written empty; ints and floats by repr, which is their JSON
    return _as_text(value)  # booleans true/false, nested values as compact JSON


def _write_csv(spool: _Spool, stream: IO[bytes], schema: _Schema) -> None:
    header = schema.names
    buffer = io.StringIO()
    # "\n", not the csv module's "\r\n": Hive-style readers would keep the "\r" in the last column.
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for plain, records in spool.batches():
        rows = [[record.get(key) for key in header] for record in records]
        for index, name, kind in schema.checked:
            values = [row[index] for row in rows]
            conformed = schema.conform(values, name, kind)
            if conformed is not values:
                for row, value in zip(rows, conformed, strict=True):
                    row[index] = value
        writer.writerows(rows if plain else [list(map(_csv_cell, row)) for row in rows])
        stream.write(buffer.getvalue().encode("utf-8"))
        buffer.seek(0)
        buffer.truncate()
    stream.write(buffer.getvalue().encode("utf-8"))


# ---- Parquet -------------------------------------------------------------------------------


def _import_pyarrow() -> tuple[Any, Any]:
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError as error:
        raise ImportError(f"Writing Parquet needs pyarrow, which is not installed: {_PARQUET_HINT}") from error
    return pyarrow, pyarrow.parquet


def _write_parquet(spool: _Spool, out: _CountingWriter, schema: _Schema, batch_size: int) -> None:
    pa, pq = _import_pyarrow()
    arrow_types = {
        "string": pa.string(),
        "number": pa.float64(),
        "integer": pa.int64(),
        "boolean": pa.bool_(),
        "timestamp": pa.timestamp("us", tz="UTC"),
    }
    arrow_schema = pa.schema([pa.field(name, arrow_types[kind]) for name, kind in schema.columns])
    writer = pq.ParquetWriter(out, arrow_schema, compression="snappy")
    try:
        for _plain, records in spool.batches():
            arrays = [
                _arrow_array(pa, schema, [record.get(name) for record in records], name, kind, arrow_types[kind])
                for name, kind in schema.columns
            ]
            writer.write_table(pa.Table.from_arrays(arrays, schema=arrow_schema), row_group_size=batch_size)
    except BaseException:
        try:  # the target is discarded anyway; do not let this mask the original error
            writer.close()
        except Exception:
            pass
        raise
    writer.close()


# What Arrow raises for values it will not convert (ArrowInvalid and ArrowTypeError subclass these).
_REFUSED = (ValueError, TypeError, OverflowError)


def _arrow_array(pa: Any, schema: _Schema, values: list[Any], name: str, kind: str, arrow_type: Any) -> Any:
    if kind == "string":
        try:
            return pa.array(values, arrow_type)
        except _REFUSED:  # non-string values: JSON text
            return pa.array([v if v is None or type(v) is str else _as_text(v) for v in values], arrow_type)
    values = schema.conform(values, name, kind)
    if kind == "timestamp":
        try:
            return pa.array(values, pa.string()).cast(arrow_type)
        except _REFUSED:  # spellings Arrow does not parse (a bare date, nanoseconds), datetimes
            return pa.array([None if v is None else parse_timestamp(v) for v in values], arrow_type)
    try:
        return pa.array(values, arrow_type)
    except _REFUSED:  # an integer out of range: the strict check names it
        return pa.array(schema.conform(values, name, kind, strict=True), arrow_type)
