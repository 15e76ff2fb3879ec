"""Destinations: which URIs are accepted, and their format and compression. No I/O."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from airflow_provider_cfbilling.exceptions import CloudflareInputError

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
    :raises CloudflareInputError: (a ``ValueError``) naming the parameter and the fix, for an empty
        destination, a directory, a relative path, a malformed or read-only URI, an unknown
        ``file_format``, a suffix that contradicts ``file_format`` or ``.gz`` on Parquet.
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
        raise CloudflareInputError(
            "destination",
            f"{uri!r} ends in {suffix!r}, which means {suffix_format}, but file_format={file_format!r}",
            "Change the suffix to match, or leave file_format unset",
        )
    fmt = chosen or suffix_format or "jsonl"
    if fmt == "parquet" and compression:
        raise CloudflareInputError(
            "destination",
            f"{uri!r} ends in '.gz', but Parquet is compressed internally and cannot be gzipped",
            "Drop '.gz' from the destination (e.g. '.../usage.parquet')",
        )
    return OutputSpec(uri=uri, file_format=fmt, compression=compression)


def _normalise_destination(destination: Any) -> str:
    if not isinstance(destination, str) or not destination.strip():
        raise CloudflareInputError("destination", "is empty", f"Give the URI of a file to write, e.g. {_EXAMPLE}")
    # A trailing newline from a rendered template is never meant to be part of a key.
    text = destination.strip()
    match = _URI.fullmatch(text)
    if match:
        scheme, rest = match["scheme"].lower(), match["rest"]
        if scheme in _READ_ONLY_SCHEMES:
            raise CloudflareInputError(
                "destination",
                f"{text!r} uses {scheme}://, which is read-only for Airflow's ObjectStoragePath",
                f"Write to object storage instead, e.g. {_EXAMPLE}",
            )
        if scheme == "file":
            if not rest.startswith("/") or rest.startswith("//"):
                raise CloudflareInputError(
                    "destination",
                    f"{text!r} is not an absolute file URI",
                    "Write three slashes and an absolute path, e.g. 'file:///data/usage.jsonl'",
                )
        elif not rest or rest.startswith("/"):
            raise CloudflareInputError(
                "destination",
                f"{text!r} has no bucket or container",
                f"Write {scheme}://<bucket>/<key>, e.g. '{scheme}://my-bucket/cloudflare/usage.jsonl'",
            )
        elif "/" not in rest.split("@", 1)[-1]:
            raise CloudflareInputError(
                "destination",
                f"{text!r} names a bucket, not a file",
                f"Add the object key, e.g. '{text.rstrip('/')}/cloudflare/usage.jsonl'",
            )
        uri = f"{scheme}://{rest}"
    elif text.startswith("/") and not text.startswith("//"):
        uri = "file://" + text
    elif re.match(r"[A-Za-z][A-Za-z0-9+.-]*:", text):
        raise CloudflareInputError(
            "destination",
            f"{text!r} is not a URI Airflow's ObjectStoragePath understands",
            f"Write scheme://bucket/key (two slashes), e.g. {_EXAMPLE}",
        )
    else:
        raise CloudflareInputError(
            "destination",
            f"{text!r} is a relative path",
            f"Give an absolute path ('/data/usage.jsonl') or a URI, e.g. {_EXAMPLE}",
        )
    if uri.endswith("/"):
        raise CloudflareInputError(
            "destination",
            f"{text!r} ends with '/', so it names a directory",
            f"Add a file name, e.g. '{text}usage.jsonl'",
        )
    if uri.rsplit("/", 1)[-1] in (".", ".."):
        raise CloudflareInputError("destination", f"{text!r} does not name a file", f"Add a file name, e.g. {_EXAMPLE}")
    return uri


def _validate_file_format(file_format: Any) -> str | None:
    if file_format is None:
        return None
    normalised = file_format.strip().lower() if isinstance(file_format, str) else file_format
    if normalised not in FORMATS:
        allowed = ", ".join(repr(fmt) for fmt in FORMATS)
        hint = " (JSON Lines is 'jsonl')" if normalised in ("json", "ndjson") else ""
        raise CloudflareInputError(
            "file_format",
            f"{file_format!r} is not a file format",
            f"file_format must be one of {allowed}, or None to take it from the destination's suffix{hint}",
        )
    return str(normalised)
