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
import hashlib
import io
import json
import logging
import os
import pickle
import re
import secrets
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import date, datetime, timezone
from decimal import Decimal
from itertools import chain, islice
from typing import IO, TYPE_CHECKING, Any

from airflow_provider_cfbilling.records import REDACTED, SCHEMAS, Column, parse_timestamp, snake_key

if TYPE_CHECKING:
    from airflow_provider_cfbilling.version_compat import ObjectStoragePath

log = logging.getLogger(__name__)

FORMATS = ("jsonl", "csv", "parquet")
# Records encoded and written together for JSON Lines (CSV/Parquet use ``batch_size``).
_JSONL_BATCH = 1000
COMPRESSIONS = ("gzip",)

_SUFFIX_FORMATS = (
    (".jsonl", "jsonl"),
    (".ndjson", "jsonl"),
    (".json", "jsonl"),
    (".csv", "csv"),
    (".parquet", "parquet"),
    (".pq", "parquet"),
)
_URI = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<rest>.*)", re.DOTALL)
_READ_ONLY_SCHEMES = frozenset({"http", "https"})
# Filesystems whose transactional write (autocommit=False + commit/discard) is verified to
# publish nothing until commit and to clean up on discard: tested against an S3 server.
_TRANSACTIONAL_FILESYSTEMS = frozenset({"s3fs.core.S3FileSystem"})
_EXAMPLE = "'s3://bucket/cloudflare/usage/date=2025-01-31/usage.jsonl' or 'file:///data/usage.jsonl'"
_PARQUET_HINT = "pip install 'airflow-provider-cfbilling[parquet]'"


@dataclass(frozen=True)
class OutputSpec:
    """A validated destination: where, in which format, compressed or not.

    :param uri: the object-storage URI (absolute local paths become ``file://`` URIs).
    :param file_format: one of :data:`FORMATS`.
    :param compression: ``"gzip"`` or ``None`` (Parquet compresses internally, never gzip).
    """

    uri: str
    file_format: str
    compression: str | None = None


@dataclass(frozen=True)
class WriteResult:
    """What :func:`write_records` wrote: the URI, the format, the record count, the object's size
    and the hex SHA-256 of its bytes exactly as stored (after compression)."""

    uri: str
    file_format: str
    records: int
    bytes: int
    sha256: str


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


def resolve_output(destination: str, file_format: str | None = None) -> OutputSpec:
    """Validate a destination and decide its format and compression. No I/O.

    The format is ``file_format`` if given, else the suffix: ``.jsonl``/``.ndjson``/``.json``
    (JSON Lines), ``.csv``, ``.parquet``/``.pq``; a trailing ``.gz`` gzips JSON Lines and CSV.
    A name without a known suffix is JSON Lines. Destinations are URIs understood by Airflow's
    ``ObjectStoragePath`` (``s3://bucket/key``, ``gs://``, ``abfs://``, ``file:///abs/path``); an
    absolute local path (``/data/usage.jsonl``) is accepted as ``file://``; relative paths are
    not, since a worker's working directory is nobody's choice.

    :param destination: the URI of the file to write.
    :param file_format: ``"jsonl"``, ``"csv"``, ``"parquet"`` or ``None`` (from the suffix).
    :raises ValueError: naming the parameter and the fix, for an empty destination, a directory,
        a relative path, a malformed or read-only URI, an unknown ``file_format``, a suffix that
        contradicts ``file_format`` or ``.gz`` on Parquet.
    """
    uri = _normalise_destination(destination)
    name = uri.rsplit("/", 1)[-1].lower()

    compression = None
    base = name
    if base.endswith(".gz"):
        compression = "gzip"
        base = base[: -len(".gz")]
    suffix, suffix_format = next(
        ((suffix, fmt) for suffix, fmt in _SUFFIX_FORMATS if base.endswith(suffix)), ("", None)
    )

    chosen = _validate_file_format(file_format)
    if chosen is not None and suffix_format is not None and chosen != suffix_format:
        raise ValueError(
            f"destination {uri!r} ends in {suffix!r}, which means {suffix_format}, but "
            f"file_format={file_format!r}: change the suffix to match, or leave file_format unset."
        )
    fmt = chosen or suffix_format or "jsonl"
    if fmt == "parquet" and compression:
        raise ValueError(
            f"destination {uri!r} ends in '.gz', but Parquet is compressed internally and cannot be "
            "gzipped: drop '.gz' from the destination (e.g. '.../usage.parquet')."
        )
    return OutputSpec(uri=uri, file_format=fmt, compression=compression)


def _normalise_destination(destination: Any) -> str:
    if not isinstance(destination, str) or not destination.strip():
        raise ValueError(f"destination is empty: give the URI of a file to write, e.g. {_EXAMPLE}.")
    # A trailing newline from a rendered template is never meant to be part of a key.
    text = destination.strip()
    match = _URI.fullmatch(text)
    if match:
        scheme, rest = match["scheme"].lower(), match["rest"]
        if scheme in _READ_ONLY_SCHEMES:
            raise ValueError(
                f"destination {text!r} uses {scheme}://, which is read-only for Airflow's "
                f"ObjectStoragePath: write to object storage instead, e.g. {_EXAMPLE}."
            )
        if scheme == "file":
            if not rest.startswith("/") or rest.startswith("//"):
                raise ValueError(
                    f"destination {text!r} is not an absolute file URI: write three slashes and an "
                    "absolute path, e.g. 'file:///data/usage.jsonl'."
                )
        elif not rest or rest.startswith("/"):
            raise ValueError(
                f"destination {text!r} has no bucket or container: write "
                f"{scheme}://<bucket>/<key>, e.g. '{scheme}://my-bucket/cloudflare/usage.jsonl'."
            )
        elif "/" not in rest.split("@", 1)[-1]:
            raise ValueError(
                f"destination {text!r} names a bucket, not a file: add the object key, e.g. "
                f"'{text.rstrip('/')}/cloudflare/usage.jsonl'."
            )
        uri = f"{scheme}://{rest}"
    elif text.startswith("/") and not text.startswith("//"):
        uri = "file://" + text
    elif re.match(r"[A-Za-z][A-Za-z0-9+.-]*:", text):
        raise ValueError(
            f"destination {text!r} is not a URI Airflow's ObjectStoragePath understands: write "
            f"scheme://bucket/key (two slashes), e.g. {_EXAMPLE}."
        )
    else:
        raise ValueError(
            f"destination {text!r} is a relative path: give an absolute path ('/data/usage.jsonl') "
            f"or a URI, e.g. {_EXAMPLE}."
        )
    if uri.endswith("/"):
        raise ValueError(
            f"destination {text!r} ends with '/', so it names a directory: add a file name, e.g. '{text}usage.jsonl'."
        )
    if uri.rsplit("/", 1)[-1] in (".", ".."):
        raise ValueError(f"destination {text!r} does not name a file: add a file name, e.g. {_EXAMPLE}.")
    return uri


def _validate_file_format(file_format: Any) -> str | None:
    if file_format is None:
        return None
    normalised = file_format.strip().lower() if isinstance(file_format, str) else file_format
    if normalised not in FORMATS:
        allowed = ", ".join(repr(fmt) for fmt in FORMATS)
        hint = " (JSON Lines is 'jsonl')" if normalised in ("json", "ndjson") else ""
        raise ValueError(
            f"file_format must be one of {allowed}, or None to take it from the destination's "
            f"suffix{hint}; got {file_format!r}."
        )
    return str(normalised)


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


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
    :raises ValueError: for a bad ``spec`` or ``batch_size``, or a documented value that does not
        fit its documented type (CSV and Parquet, see above).
    """
    if spec.file_format not in FORMATS:
        allowed = ", ".join(repr(fmt) for fmt in FORMATS)
        raise ValueError(f"file_format must be one of {allowed}; got {spec.file_format!r}.")
    if spec.compression not in (None, *COMPRESSIONS):
        raise ValueError(f"compression must be 'gzip' or None; got {spec.compression!r}.")
    if spec.file_format == "parquet" and spec.compression:
        raise ValueError("Parquet cannot be gzipped: set compression=None.")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer; got {batch_size!r}.")
    if spec.file_format == "parquet":
        _import_pyarrow()  # fail before consuming the records, with the install hint

    path = _object_path(spec.uri, conn_id)
    if spec.file_format == "jsonl":
        with _open_atomic(path) as out, _compressed(out, spec.compression) as stream:
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


def write_bytes(uri: str, data: bytes, conn_id: str | None = None) -> None:
    """Write a small object (a manifest) atomically, like :func:`write_records` writes records."""
    with _open_atomic(_object_path(uri, conn_id)) as out:
        out.write(data)


def read_bytes(uri: str, conn_id: str | None = None) -> bytes | None:
    """A small object's bytes (a manifest), or ``None`` when it does not exist."""
    path = _object_path(uri, conn_id)
    fs = _filesystem(path)
    try:
        with fs.open(path.path, "rb") as file:
            return bytes(file.read())
    except FileNotFoundError:
        return None


def object_sha256(uri: str, conn_id: str | None = None) -> str | None:
    """The SHA-256 of an object's bytes, streamed; ``None`` when it does not exist."""
    path = _object_path(uri, conn_id)
    fs = _filesystem(path)
    digest = hashlib.sha256()
    try:
        with fs.open(path.path, "rb") as file:
            for chunk in iter(lambda: file.read(1 << 20), b""):
                digest.update(chunk)
    except FileNotFoundError:
        return None
    return digest.hexdigest()


def check_filesystem(uri: str, conn_id: str | None = None) -> None:
    """Raise the ``ValueError`` :func:`write_records` would raise for a destination Airflow has no
    filesystem for (naming the provider to install), without reading or writing anything."""
    _filesystem(_object_path(uri, conn_id))


def _object_path(uri: str, conn_id: str | None) -> ObjectStoragePath:
    from airflow_provider_cfbilling.version_compat import ObjectStoragePath

    try:
        # conn_id only when given: an explicit None would hide a 'conn_id@bucket' URI on Airflow 2.
        path = ObjectStoragePath(uri, conn_id=conn_id) if conn_id else ObjectStoragePath(uri)
        # Resolve the filesystem now, so an unknown scheme is reported with the URI as the user
        # wrote it (Airflow 2's ObjectStoragePath renders 'foo://b/k' as 'foo:///b/k').
        path.fs  # noqa: B018
    except ValueError as error:  # "Unsupported filesystem: 'foo'", "No filesystem registered for scheme foo"
        raise _no_filesystem(uri, uri.split(":", 1)[0], error) from error
    return path


def _lineage_uri(uri: str) -> str:
    """The URI without a ``conn_id@`` userinfo part: lineage names the data, not the credentials."""
    match = _URI.fullmatch(uri)
    if match and "@" in match["rest"].split("/", 1)[0]:
        bucket_and_key = match["rest"].split("@", 1)[1]
        return f"{match['scheme']}://{bucket_and_key}"
    return uri


def _report_lineage(path: ObjectStoragePath, uri: str) -> None:
    # Writes go through the filesystem, not ObjectStoragePath.open (whose wrapper would report
    # the temporary path, once per write call), so the final object is reported here, once.
    try:
        from airflow_provider_cfbilling.version_compat import report_output_asset

        report_output_asset(path, uri)
    except Exception:  # lineage is best-effort: the data is written, never fail the task for it
        log.warning("Could not report %s as lineage output", uri, exc_info=True)


# ---- atomic targets -------------------------------------------------------------------------


class _CountingWriter(io.RawIOBase):
    """A binary writer that counts and hashes what reaches the target (the final object's bytes)."""

    def __init__(self, target: IO[bytes]) -> None:
        super().__init__()
        self._target = target
        self.bytes_written = 0
        self.sha256 = hashlib.sha256()

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        size = memoryview(data).nbytes
        self._target.write(data)
        self.sha256.update(data)
        self.bytes_written += size
        return size

    def tell(self) -> int:
        return self.bytes_written

    def close(self) -> None:
        # The target is finalised (committed or discarded) by _open_atomic, not by a format
        # writer (GzipFile, ParquetWriter) closing what it was given.
        super().close()


def _temporary_sibling(final: str) -> str:
    parent, _, name = final.rpartition("/")
    # Hidden (readers of a partition such as Spark, Hive and Athena skip dot-files), unique per
    # attempt, and short enough for a 255-byte file-name limit.
    return f"{parent}/.{name[:200]}.{secrets.token_hex(8)}.tmp"


class _LocalReplace:
    """Local disk: a temporary sibling, fsynced, then ``os.replace`` over the final path."""

    def __init__(self, final: str) -> None:
        self.final = final
        self.parent = os.path.dirname(final) or "/"
        os.makedirs(self.parent, exist_ok=True)
        self.temporary = _temporary_sibling(final)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
        descriptor = os.open(self.temporary, flags, 0o666)  # umask applies, like a normal file
        self.file: IO[bytes] = os.fdopen(descriptor, "wb", buffering=1 << 20)

    def commit(self) -> None:
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        os.replace(self.temporary, self.final)
        try:  # make the rename itself durable
            directory = os.open(self.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
        except OSError:
            pass

    def abort(self) -> None:
        try:
            self.file.close()
        finally:
            try:
                os.unlink(self.temporary)
            except FileNotFoundError:
                pass


class _Transactional:
    """Filesystems with verified transactional files (S3): write, then commit or discard."""

    def __init__(self, fs: Any, final: str) -> None:
        self.fs = fs
        self.file = fs.open(final, "wb", autocommit=False)

    def commit(self) -> None:
        try:
            self.file.close()  # uploads the last part; nothing is visible yet
            self.file.commit()  # completes the upload: the object appears, whole
        finally:
            self._forget()

    def abort(self) -> None:
        try:
            self.file.discard()  # aborts the multipart upload, if one was started
        finally:
            # Closed without flushing: closing normally would upload the buffer (and could start
            # a new multipart upload) only to throw it away.
            self.file.closed = True
            self._forget()

    def _forget(self) -> None:
        # fsspec queues every autocommit=False file on the (process-wide, cached) filesystem's
        # transaction for a later fs.transaction commit; this write is finished either way.
        try:
            self.fs.transaction.files.remove(self.file)
        except (AttributeError, ValueError):
            pass


class _TemporarySibling:
    """Other filesystems: a hidden temporary object, moved into place, then gone."""

    def __init__(self, fs: Any, final: str) -> None:
        self.fs = fs
        self.final = final
        self.temporary = _temporary_sibling(final)
        self.file = fs.open(self.temporary, "wb")

    def commit(self) -> None:
        self.file.close()
        try:
            self.fs.mv(self.temporary, self.final)
        finally:
            self._remove_temporary()

    def abort(self) -> None:
        try:
            self.file.close()
        finally:
            self._remove_temporary()

    def _remove_temporary(self) -> None:
        try:
            if self.fs.exists(self.temporary):
                self.fs.rm(self.temporary)
        except FileNotFoundError:
            pass


_FILESYSTEM_PROVIDERS = {
    "s3": "apache-airflow-providers-amazon[s3fs]",
    "gs": "apache-airflow-providers-google",
    "gcs": "apache-airflow-providers-google",
    "abfs": "apache-airflow-providers-microsoft-azure",
    "abfss": "apache-airflow-providers-microsoft-azure",
    "adl": "apache-airflow-providers-microsoft-azure",
}


def _filesystem(path: ObjectStoragePath) -> Any:
    try:
        return path.fs
    except ValueError as error:  # "No filesystem registered for scheme gs"
        raise _no_filesystem(str(path), path.protocol or "file", error) from error


def _no_filesystem(uri: str, scheme: str, error: Exception) -> ValueError:
    provider = _FILESYSTEM_PROVIDERS.get(scheme)
    hint = f"install {provider}" if provider else "install the Airflow provider that supplies it"
    return ValueError(f"destination {uri!r}: Airflow has no filesystem for {scheme}:// here ({error}); {hint}.")


def _atomic_target(path: ObjectStoragePath) -> _LocalReplace | _Transactional | _TemporarySibling:
    from fsspec.implementations.local import LocalFileSystem

    fs = _filesystem(path)
    if isinstance(fs, LocalFileSystem):
        return _LocalReplace(path.path)
    classes = {f"{cls.__module__}.{cls.__qualname__}" for cls in type(fs).__mro__}
    if classes & _TRANSACTIONAL_FILESYSTEMS:
        return _Transactional(fs, path.path)
    return _TemporarySibling(fs, path.path)


@contextmanager
def _open_atomic(path: ObjectStoragePath) -> Iterator[_CountingWriter]:
    """Yield a binary writer whose bytes appear at ``path`` all at once, or not at all."""
    target = _atomic_target(path)
    out = _CountingWriter(target.file)
    try:
        yield out
    except BaseException:
        try:
            target.abort()
        except Exception:
            log.warning("Could not clean up the partial write to %s", path, exc_info=True)
        raise
    try:
        target.commit()
    except BaseException:
        try:
            target.abort()
        except Exception:
            log.debug("Cleanup after a failed commit to %s failed", path, exc_info=True)
        raise


@contextmanager
def _compressed(out: _CountingWriter, compression: str | None) -> Iterator[IO[bytes]]:
    if compression is None:
        yield out  # type: ignore[misc]
        return
    # No file name and mtime 0 in the header, so the same records give the same bytes.
    stream = gzip.GzipFile(filename="", mode="wb", fileobj=out, compresslevel=6, mtime=0)
    try:
        yield stream  # type: ignore[misc]
    except BaseException:
        # The target is being discarded: finish the gzip stream into a throwaway buffer, so that
        # nothing (not even garbage collection) writes a trailer to the discarded target.
        stream.fileobj = io.BytesIO()
        try:
            stream.close()
        except Exception:
            pass
        raise
    stream.close()


# ---- JSON Lines ----------------------------------------------------------------------------


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(timezone.utc)
            return value.replace(tzinfo=None).isoformat() + "Z"
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    raise TypeError(f"{type(value).__name__} is not JSON serializable: {value!r}")


def _compact_json_encoder() -> Any:
    """``json.dumps(value, separators=(",", ":"), ensure_ascii=False)``, minus per-call set-up.

    ``JSONEncoder.encode`` builds a new C encoder on every call; for millions of records, building
    it once saves about a third of the encoding time. Same output; the documented path otherwise.
    """
    encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False, default=_json_default)
    make_encoder = getattr(json.encoder, "c_make_encoder", None)
    if make_encoder is None:  # pragma: no cover - interpreters without the C accelerator
        return encoder.encode
    chunks = make_encoder(
        None,  # no circular-reference markers (check_circular=False)
        _json_default,
        json.encoder.encode_basestring,  # ensure_ascii=False
        None,  # indent
        ":",
        ",",
        False,  # sort_keys
        False,  # skipkeys
        True,  # allow_nan, as json.dumps
    )

    def encode(value: Any, _join: Any = "".join) -> str:
        return _join(chunks(value, 0))

    return encode


_encode_json = _compact_json_encoder()
encode_json = _encode_json  # one record as compact JSON text, keys as sent (also the content digest's form)


def _jsonl_batches(records: Iterable[dict[str, Any]], batch_size: int) -> Iterator[list[dict[str, Any]]]:
    iterator = iter(records)
    while batch := list(islice(iterator, batch_size)):
        yield batch


def _encode_batch(batch: list[dict[str, Any]]) -> bytes:
    return ("\n".join(map(_encode_json, batch)) + "\n").encode("utf-8")


def _write_jsonl(records: Iterable[dict[str, Any]], stream: IO[bytes], batch_size: int) -> int:
    count = 0
    for batch in _jsonl_batches(records, batch_size):
        stream.write(_encode_batch(batch))
        count += len(batch)
    return count


# ---- spool (CSV and Parquet) ---------------------------------------------------------------


class _Spool:
    """The records in a local temporary file, with their count and the union of their keys.

    Pickled per batch: an order of magnitude faster than JSON both ways, and exact for every
    Python type. The file is unlinked at creation (deleted even if the worker dies) and lives
    where ``tempfile`` puts it (``TMPDIR``).
    """

    def __init__(self, records: Iterable[dict[str, Any]], batch_size: int) -> None:
        self.file: IO[bytes] = tempfile.TemporaryFile(prefix="cfbilling-spool-")  # noqa: SIM115
        self.count = 0
        self.frames = 0
        self.keys: list[str] = []  # sorted
        try:
            seen: set[str] = set()
            add_keys = seen.update
            for batch in _jsonl_batches(records, batch_size):
                # Which batches hold values other than str, int, float and None: only those need
                # the slower, per-value conversion when written as CSV.
                value_types = set(map(type, chain.from_iterable(map(dict.values, batch))))
                plain = value_types <= _PLAIN_TYPES
                pickle.dump((plain, batch), self.file, protocol=pickle.HIGHEST_PROTOCOL)
                self.frames += 1
                self.count += len(batch)
                for record in batch:
                    add_keys(record)
            self.keys = sorted(seen)
            self.file.flush()
        except BaseException:
            self.file.close()
            raise

    def __enter__(self) -> _Spool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.file.close()

    def batches(self) -> Iterator[tuple[bool, list[dict[str, Any]]]]:
        """Yield ``(plain, records)`` per batch, in order; ``plain``: only str/int/float/None values."""
        self.file.seek(0)
        for _ in range(self.frames):
            yield pickle.load(self.file)


_PLAIN_TYPES = frozenset({str, int, float, type(None)})


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
    "object_sha256",
    "read_bytes",
    "read_records",
    "resolve_output",
    "write_bytes",
    "write_records",
]
