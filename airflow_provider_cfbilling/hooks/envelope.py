"""Cloudflare's response envelope: streaming record parsing and error classification.

Usage responses have no pagination, so one body can hold millions of records. The body is
spooled (memory, then disk) by the hook and parsed here exactly once, record by record, with
memory bounded by the size of one record rather than of the body.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterator, Mapping
from typing import IO, Any

from airflow_provider_cfbilling.exceptions import (
    RETRYABLE_STATUSES,
    CloudflareAPIError,
    CloudflareAuthError,
    CloudflareNotFoundError,
    CloudflarePermissionError,
    CloudflareRateLimitError,
    CloudflareRequestError,
    CloudflareServerError,
    retryable_status,
)

# Error codes that mean "these credentials are not valid", whatever the HTTP status.
AUTH_ERROR_CODES = frozenset({1000, 6003, 6100, 6101, 6102, 6103, 6111, 9103, 9106, 9109})
# Code 10000 ("Authentication error") on a 403 means: valid credentials, missing permission.
ROUTE_NOT_FOUND_CODE = 7003

_CHUNK_CHARS = 1 << 16
_WHITESPACE = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


class MalformedBodyError(CloudflareServerError):
    """The body is not a complete JSON envelope (cut short, HTML from a proxy, ...)."""


def error_details(envelope: Any) -> tuple[list[int], list[str]]:
    """Codes and messages from an envelope's ``errors`` (and nested ``error_chain``)."""
    codes: list[int] = []
    messages: list[str] = []
    if not isinstance(envelope, Mapping):
        return codes, messages
    pending = list(envelope.get("errors") or [])
    while pending:
        item = pending.pop(0)
        if not isinstance(item, Mapping):
            messages.append(str(item))
            continue
        code = item.get("code")
        if isinstance(code, int):
            codes.append(code)
            messages.append(str(item.get("message") or ""))
        elif item.get("message"):
            messages.append(str(item["message"]))
        pending.extend(item.get("error_chain") or [])
    return codes, messages


def classify_error(status: int, envelope: Any, endpoint: str, summary: str | None = None) -> CloudflareAPIError:
    """The exception for a failed response: HTTP ``status`` and the parsed envelope (or None).

    Its ``retryable`` is what the status says (:func:`~airflow_provider_cfbilling.exceptions.retryable_status`):
    429, 5xx, 408 and 409 stay retryable whatever the codes; 401/403/404 and auth or route codes
    give the permanent auth, permission and not-found errors; any other 3xx/4xx is a permanent
    :class:`~airflow_provider_cfbilling.exceptions.CloudflareRequestError` (e.g. 400, code 1183).
    A 2xx with ``success: false`` is a plain, retryable ``CloudflareAPIError`` unless its codes
    name a credential or route problem.
    """
    codes, messages = error_details(envelope)
    error_class: type[CloudflareAPIError]
    if status == 429:
        error_class = CloudflareRateLimitError
    elif status >= 500:
        error_class = CloudflareServerError
    elif status in RETRYABLE_STATUSES:
        error_class = CloudflareAPIError  # 408, 409: retryable, whatever the codes say
    elif status == 404 or ROUTE_NOT_FOUND_CODE in codes:
        error_class = CloudflareNotFoundError
    elif status == 401 or AUTH_ERROR_CODES.intersection(codes):
        error_class = CloudflareAuthError
    elif status == 403:
        error_class = CloudflarePermissionError
    elif not retryable_status(status):
        error_class = CloudflareRequestError
    else:
        error_class = CloudflareAPIError
    if summary is None:
        summary = _default_summary(error_class, status)
    return error_class(summary, status=status, codes=codes, messages=messages, endpoint=endpoint)


def _default_summary(error_class: type[CloudflareAPIError], status: int) -> str:
    if error_class is CloudflareAuthError:
        return "Cloudflare rejected the credentials; check the connection's API token (or email and global API key)"
    if error_class is CloudflarePermissionError:
        return "The credentials lack permission; the token needs Billing Read on this account"
    if error_class is CloudflareNotFoundError:
        return "Cloudflare has no such route or object"
    if error_class is CloudflareRateLimitError:
        return "Cloudflare kept rate-limiting the requests (HTTP 429) past the retry budget"
    if error_class is CloudflareServerError:
        return "Cloudflare kept failing (server error) past the retry budget"
    if status == 200:
        return "Cloudflare answered HTTP 200 with success: false"
    return "Cloudflare rejected the request"


def check_envelope(envelope: Any, status: int, endpoint: str) -> Any:
    """The ``result`` of a fully parsed envelope, or the error it reports."""
    if not isinstance(envelope, Mapping) or "success" not in envelope:
        raise MalformedBodyError("The response is not a Cloudflare envelope", status=status, endpoint=endpoint)
    if envelope.get("success") is not True:
        raise classify_error(status, envelope, endpoint)
    return envelope.get("result")


class _Utf8Reader:
    """Decodes a binary stream chunk by chunk; ``read`` returns ``""`` only at the end.

    ``io.TextIOWrapper`` would do, but it needs a full ``io`` object and Python 3.10's
    ``SpooledTemporaryFile`` (the hook's body spool) lacks ``readable()``.
    """

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="strict")

    def read(self, size: int) -> str:
        while True:
            data = self._raw.read(size)
            text = self._decoder.decode(data, final=not data)
            if text or not data:
                return text


class _TextScanner:
    """A forward-only JSON scanner over a text stream, holding one chunk plus one value at a time."""

    def __init__(self, stream: _Utf8Reader) -> None:
        self._stream = stream
        self._buffer = ""
        self._pos = 0
        self._eof = False

    def _fill(self) -> bool:
        if self._eof:
            return False
        data = self._stream.read(_CHUNK_CHARS)
        if not data:
            self._eof = True
            return False
        self._buffer = self._buffer[self._pos :] + data
        self._pos = 0
        return True

    def peek(self) -> str:
        while True:
            self._pos = _WHITESPACE.match(self._buffer, self._pos).end()  # type: ignore[union-attr]
            if self._pos < len(self._buffer):
                return self._buffer[self._pos]
            if not self._fill():
                return ""

    def expect(self, char: str) -> None:
        found = self.peek()
        if found != char:
            raise ValueError(f"expected {char!r}, found {found or 'end of body'!r}")
        self._pos += 1

    def value(self) -> Any:
        self.peek()
        while True:
            try:
                value, end = _DECODER.raw_decode(self._buffer, self._pos)
            except json.JSONDecodeError:
                if self._fill():
                    continue
                raise
            if end == len(self._buffer) and not isinstance(value, (dict, list, str)) and self._fill():
                continue  # a scalar at the chunk edge may continue in the next chunk
            self._pos = end
            return value


def iter_envelope_records(body: IO[bytes], status: int, endpoint: str) -> Iterator[dict[str, Any]]:
    """Yield the records of an envelope's ``result`` list while parsing the body once.

    The envelope's ``success`` flag may come before or after ``result``; when it comes after and
    is not true, the error is raised after the records were yielded, so consumers must treat
    their output as provisional until the iterator is exhausted (the sinks write atomically).
    """
    scanner = _TextScanner(_Utf8Reader(body))
    envelope: dict[str, Any] = {}
    try:
        scanner.expect("{")
        if scanner.peek() == "}":
            scanner.expect("}")
        else:
            while True:
                key = scanner.value()
                if not isinstance(key, str):
                    raise ValueError("object key is not a string")
                scanner.expect(":")
                if key == "result" and scanner.peek() == "[":
                    envelope["result"] = []
                    scanner.expect("[")
                    if scanner.peek() == "]":
                        scanner.expect("]")
                    else:
                        while True:
                            record = scanner.value()
                            if not isinstance(record, dict):
                                raise ValueError("a result item is not an object")
                            yield record
                            if scanner.peek() == ",":
                                scanner.expect(",")
                                continue
                            scanner.expect("]")
                            break
                else:
                    envelope[key] = scanner.value()
                    if key == "success" and envelope[key] is not True:
                        # Fail before yielding anything when the envelope says so up front.
                        break
                if scanner.peek() == ",":
                    scanner.expect(",")
                    continue
                scanner.expect("}")
                if scanner.peek() != "":
                    raise ValueError("data after the end of the envelope")
                break
    except (ValueError, UnicodeDecodeError) as error:
        raise MalformedBodyError(
            f"The response body is not valid JSON ({type(error).__name__}: {str(error)[:120]})",
            status=status,
            endpoint=endpoint,
        ) from None
    if "success" not in envelope:
        raise MalformedBodyError("The response is not a Cloudflare envelope", status=status, endpoint=endpoint)
    if envelope["success"] is not True:
        raise classify_error(status, envelope, endpoint)
    result = envelope.get("result")
    if result is not None and not isinstance(result, list):
        raise MalformedBodyError("The envelope's result is not a list of records", status=status, endpoint=endpoint)
