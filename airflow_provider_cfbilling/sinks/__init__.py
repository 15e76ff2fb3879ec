"""Landing records in object storage: JSON Lines, CSV or Parquet, atomically and idempotently.

The promise to users: a reader of the destination sees either the previous object or the complete
new one, never a partial one, whatever fails (the API mid-stream, the network, the worker); a
re-run of the same window writes byte-identical output to the same path; memory does not grow
with the number of records.

How each filesystem gets atomicity (``_open_atomic``):

- Local disk (``file://`` or an absolute path): a hidden temporary sibling
  (``.<name>.<random>.tmp``) is written, fsynced and renamed over the final path with
  ``os.replace``, which is atomic on POSIX; the directory is fsynced after. fsspec's own
  transactional local files are not used: they stage in the system temp directory and fall back
  to a non-atomic copy across devices.
- S3 (s3fs): fsspec's transactional write, ``fs.open(path, "wb", autocommit=False)``. Parts go to
  a multipart upload that is completed on commit (the object appears at once, whole) or aborted
  on failure (nothing appears). A killed worker leaves only an incomplete multipart upload,
  which is invisible to readers; a bucket lifecycle rule ``AbortIncompleteMultipartUpload``
  reclaims it.
- Any other filesystem (GCS, Azure, memory, ...): a hidden temporary sibling is written, then
  moved into place with ``fs.mv`` (a server-side copy on object stores, which publishes the
  object whole) and deleted. After a killed worker, only the hidden temporary object can remain.

On any exception, including one raised by the records iterator, the temporary data is removed
or the upload aborted, the previous object is untouched, and the exception propagates.

CSV and Parquet need every column before the first row: the records are first spooled to a
local temporary file (pickled batches, unlinked at creation) while the union of keys is
collected, then written from the spool in batches of ``batch_size``. JSON Lines stream straight
to the target. Either way at most one batch of records is in memory.

CSV and Parquet have stable schemas, so that a folder of partitions reads as one table: the
documented columns always, with their documented types; a field the documentation does not list
always as a string column (see :func:`write_records`). Nothing is inferred from the values.

Destinations are object-storage URIs for Airflow's ``ObjectStoragePath``; a plain absolute local
path is taken as ``file://``, a relative one is refused. The final object (never a temporary
one) is reported once to Airflow's hook lineage collector after a successful write.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from airflow_provider_cfbilling.exceptions import CloudflareInputError
from airflow_provider_cfbilling.records import Column
from airflow_provider_cfbilling.sinks.destinations import COMPRESSIONS, FORMATS, OutputSpec, resolve_output
from airflow_provider_cfbilling.sinks.encoding import _JSONL_BATCH, _Spool, _write_encoded, _write_jsonl, encode_json
from airflow_provider_cfbilling.sinks.storage import (
    _compressed,
    _filesystem,
    _lineage_uri,
    _object_path,
    _open_atomic,
    _report_lineage,
    check_filesystem,
    object_sha256,
    read_bytes,
    write_bytes,
)
from airflow_provider_cfbilling.sinks.tabular import _import_pyarrow, _Schema, _write_csv, _write_parquet

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WriteResult:
    """What :func:`write_records` wrote: the URI, the format, the record count, the object's size
    and the hex SHA-256 of its bytes exactly as stored (after compression)."""

    uri: str
    file_format: str
    records: int
    bytes: int
    sha256: str


class _EncodedLines:
    """Records already encoded as JSON Lines (``encode_json`` of each, one per line), in blocks
    of ``(bytes, number of records)``: :func:`write_records` writes them as they are for JSON
    Lines (the bytes it would have encoded) and reads them back as records for other formats."""

    def __init__(self, blocks: Iterable[tuple[bytes, int]]) -> None:
        self.blocks = blocks

    def __iter__(self) -> Iterator[dict[str, Any]]:
        from airflow_provider_cfbilling.sinks.encoding import decode_lines

        for block, _count in self.blocks:
            yield from decode_lines(block)


def write_records(
    records: Iterable[dict[str, Any]],
    spec: OutputSpec,
    *,
    columns: Sequence[Column],
    conn_id: str | None = None,
    batch_size: int = 10_000,
) -> WriteResult:
    """Write ``records`` to ``spec.uri`` atomically, streaming, and report it as lineage.

    - JSON Lines: each record as received, one compact JSON object per line, keys in the
      record's order, UTF-8. Zero records: an empty object.
    - CSV and Parquet: every documented column (``columns``, in order, even when no record has
      it: null), then one column per field the documentation does not list (sorted by name,
      present when at least one record carries the field). Column types never depend on the
      values, so every partition of a source has the same types:

      - a documented column has its documented type (Parquet: ``string``, ``double``, ``int64``,
        ``bool``, ``timestamp[us, UTC]``); non-string values in a documented string column (the
        v2 ``Tags`` object) are written as JSON text;
      - an undocumented field is always a string: strings as they are, other values as JSON text
        (``true``/``false``, numbers as JSON, nested values as compact JSON), JSON null as null.

      CSV: a header row, null is an empty cell, ``\\n`` line endings; numbers keep their exact
      ``repr``, timestamps the API's text. Zero records: CSV is the header of the documented
      columns, Parquet the documented schema with no rows.
    - A documented value of another JSON type than documented is converted where its documented
      type holds it: ``3.0`` in an integer column is ``3``, an integer in a number column a double,
      any ISO 8601 spelling in a timestamp column a timestamp (Parquet stores it in UTC; CSV keeps
      the text), and :data:`~airflow_provider_cfbilling.records.REDACTED` in a non-string column
      (a redacted card expiry month) is null. Anything else (``10.5`` in an integer column, text
      or a boolean in a number column, ``"n/a"`` in a timestamp column) means Cloudflare changed
      the record format: the write fails with a ``ValueError`` naming the column, the value and
      the source, and the previous object is left as it was. Changing the column's type instead
      would make this partition unreadable together with the others, and writing null would lose
      data silently; JSON Lines keeps records as sent, whatever they hold.
    - gzip (``.gz``): deterministic (no name, mtime 0), so re-runs give identical bytes.

    :param records: the records; consumed once, lazily. An exception it raises aborts the write.
    :param spec: from :func:`resolve_output`.
    :param columns: the documented columns, in the records' key style (``records.columns_for``).
    :param conn_id: Airflow connection for the filesystem (``None``: the URI's or the default).
    :param batch_size: records per write (and per Parquet row group).
    :return: the URI, the format, the number of records, the size in bytes of the object and the
        SHA-256 of its bytes (computed while writing).
    :raises CloudflareInputError: (a ``ValueError``) for a bad ``spec`` or ``batch_size``.
    :raises ValueError: for a documented value that does not fit its documented type (CSV and
        Parquet, see above).
    """
    if spec.file_format not in FORMATS:
        allowed = ", ".join(repr(fmt) for fmt in FORMATS)
        raise CloudflareInputError(
            "file_format", f"{spec.file_format!r} is not a file format", f"file_format must be one of {allowed}"
        )
    if spec.compression not in (None, *COMPRESSIONS):
        raise CloudflareInputError(
            "compression", f"{spec.compression!r} is not a compression", "compression must be 'gzip' or None"
        )
    if spec.file_format == "parquet" and spec.compression:
        raise CloudflareInputError("compression", "Parquet cannot be gzipped", "Set compression=None")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise CloudflareInputError("batch_size", f"{batch_size!r} is not a positive integer", "Use e.g. 10000")
    if spec.file_format == "parquet":
        _import_pyarrow()  # fail before consuming the records, with the install hint

    path = _object_path(spec.uri, conn_id)
    if spec.file_format == "jsonl":
        with _open_atomic(path) as out, _compressed(out, spec.compression) as stream:
            if isinstance(records, _EncodedLines):
                count = _write_encoded(records.blocks, stream)
            else:
                # Text lines need no row groups: small batches keep the peak low (measured by make bench).
                count = _write_jsonl(records, stream, min(batch_size, _JSONL_BATCH))
    else:
        with _Spool(records, batch_size) as spool:
            count = spool.count
            schema = _Schema(columns, spool.keys, spec.uri)
            if spec.file_format == "csv":
                with _open_atomic(path) as out, _compressed(out, spec.compression) as stream:
                    _write_csv(spool, stream, schema)
            else:
                with _open_atomic(path) as out:
                    _write_parquet(spool, out, schema, batch_size)

    _report_lineage(path, _lineage_uri(spec.uri))
    return WriteResult(
        uri=spec.uri,
        file_format=spec.file_format,
        records=count,
        bytes=out.bytes_written,
        sha256=out.sha256.hexdigest(),
    )


# --------------------------------------------------------------------------------------------
# Reading (tests and the demo)
# --------------------------------------------------------------------------------------------


def read_records(uri: str, conn_id: str | None = None) -> list[dict[str, Any]]:
    """Read back a file written by :func:`write_records`, whole (for tests and the demo).

    The format comes from the suffix (see :func:`resolve_output`); gzip is detected from the
    content. JSON Lines come back as written; CSV rows as strings, with empty cells as ``None``;
    Parquet rows with Python values (timestamps as aware UTC ``datetime``).
    """
    spec = resolve_output(uri)
    path = _object_path(spec.uri, conn_id)
    with _filesystem(path).open(path.path, "rb") as file:
        data = file.read()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    if spec.file_format == "jsonl":
        return [json.loads(line) for line in data.decode("utf-8").split("\n") if line]
    if spec.file_format == "csv":
        reader = csv.DictReader(io.StringIO(data.decode("utf-8"), newline=""))
        return [{key: (value if value != "" else None) for key, value in row.items()} for row in reader]
    _pa, pq = _import_pyarrow()
    return list(pq.read_table(io.BytesIO(data)).to_pylist())


__all__ = [
    "COMPRESSIONS",
    "FORMATS",
    "OutputSpec",
    "WriteResult",
    "check_filesystem",
    "encode_json",
    "object_sha256",
    "read_bytes",
    "read_records",
    "resolve_output",
    "write_bytes",
    "write_records",
]
