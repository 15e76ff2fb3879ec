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

    def __init__(self, raw: IO[bytes] | _Chain) -> None:
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


class _Chain:
    """``head`` bytes, then the rest of ``body``: the text scanner taking over from the fast path."""

    def __init__(self, head: bytes, body: IO[bytes]) -> None:
        self._head = head
        self._body = body

    def read(self, size: int) -> bytes:
        if self._head:
            head, self._head = self._head, b""
            return head
        return self._body.read(size)


# Where the text scanner resumes inside the result array.
_ARRAY_START, _NEXT_RECORD = "start", "next"

USE_MSGSPEC = True
"""Set to False to parse with the json module only (what Airflow 2 without msgspec does); tests."""

_FAST_CHUNK = 1 << 20
# With no record boundary in this many bytes (a body with whitespace between records, a huge
# record), the text scanner takes over.
_FAST_MAX_PENDING = 4 << 20
_RECORD_BOUNDARY = b"},{"
_RESULT_KEY = re.compile(rb'"result"[ \t\n\r]*:[ \t\n\r]*\[')


def _json_loads_utf8(data: bytes) -> Any:
    return json.loads(data.decode("utf-8"))  # strict UTF-8, as the text scanner decodes


def _list_decoder() -> Any:
    """``bytes -> value``: msgspec's decoder when it is installed, else the json module's.

    Either accepts exactly the JSON the text scanner accepts (strict UTF-8, no control characters
    in strings), except that msgspec also refuses ``NaN``, ``Infinity``, numbers out of a float's
    range and lone surrogates: a chunk it refuses is parsed by the text scanner instead, which
    decides as before.
    """
    if USE_MSGSPEC:
        try:
            from msgspec.json import Decoder
        except ImportError:
            pass
        else:
            return Decoder().decode
    return _json_loads_utf8


def iter_envelope_records(body: IO[bytes], status: int, endpoint: str) -> Iterator[dict[str, Any]]:
    """Yield the records of an envelope's ``result`` list while parsing the body once.

    The envelope's ``success`` flag may come before or after ``result``; when it comes after and
    is not true, the error is raised after the records were yielded, so consumers must treat
    their output as provisional until the iterator is exhausted (the sinks write atomically).

    The fast path reads the body in chunks of 1 MiB and decodes every complete record of a chunk
    in one call (msgspec, or the json module): the chunk is cut after the last ``},{`` such that
    ``[`` + the records + ``]`` decodes as a list of objects. A cut inside a string or a nested
    value never decodes (the text would end inside the string, or with unbalanced brackets), so
    a successful decode proves the cut was between two records. Whatever the fast path does not
    handle (an envelope that does not open with plain members before ``result``, whitespace
    between records, a chunk the decoder refuses, the last record and the envelope's tail) goes
    to the text scanner from where the fast path stopped: the same records, values and errors.
    """
    envelope: dict[str, Any] = {}
    head = body.read(_FAST_CHUNK)
    resume: tuple[bytes, str] | None = None
    fast = _fast_start(head, envelope)
    if fast is None:
        scanner = _TextScanner(_Utf8Reader(_Chain(head, body)))
    else:
        buffer, position = head, fast
        decode = _list_decoder()
        state = _ARRAY_START
        while True:
            cut = buffer.rfind(_RECORD_BOUNDARY, position)
            if cut >= 0:
                try:
                    records = decode(b"[" + buffer[position : cut + 1] + b"]")
                except Exception:  # refused: the text scanner decides (and names the error)
                    records = None
                if type(records) is not list or not set(map(type, records)) <= {dict}:
                    break
                yield from records
                position, state = cut + 2, _NEXT_RECORD
            elif len(buffer) - position > _FAST_MAX_PENDING:
                break
            data = body.read(_FAST_CHUNK)
            if not data:
                break
            buffer = buffer[position:] + data
            position = 0
        resume = (buffer[position:], state)
        scanner = _TextScanner(_Utf8Reader(_Chain(resume[0], body)))
    yield from _scan_text(scanner, envelope, status, endpoint, None if resume is None else resume[1])


def _fast_start(head: bytes, envelope: dict[str, Any]) -> int | None:
    """Where the records start (just after ``"result": [``) when the envelope opens with plain
    members and then ``result`` (the members go to ``envelope``); None: the text scanner parses
    the whole body."""
    match = _RESULT_KEY.search(head)
    if match is None:
        return None
    prefix = head[: match.start()].rstrip(b" \t\n\r")
    if prefix.lstrip(b" \t\n\r") == b"{":
        members: Any = {}
    elif prefix.endswith(b","):
        try:
            members = _json_loads_utf8(prefix[:-1] + b"}")
        except ValueError:  # "result" inside a string or a nested value: not the envelope's
            return None
    else:
        return None
    if type(members) is not dict or "result" in members or ("success" in members and members["success"] is not True):
        return None  # the text scanner handles these exactly as before (a failure before any record)
    envelope.update(members)
    envelope["result"] = []
    return match.end()


def _scan_text(
    scanner: _TextScanner, envelope: dict[str, Any], status: int, endpoint: str, resume: str | None
) -> Iterator[dict[str, Any]]:
    """The envelope parsed by the text scanner, from its start (``resume`` None) or from inside
    the result array (``"start"``: just after its ``[``; ``"next"``: a record follows)."""
    try:
        if resume is None:
            scanner.expect("{")
            if scanner.peek() == "}":
                scanner.expect("}")
                if scanner.peek() != "":
                    raise ValueError("data after the end of the envelope")
            else:
                yield from _members(scanner, envelope, None)
        else:
            yield from _members(scanner, envelope, resume)
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


def _members(scanner: _TextScanner, envelope: dict[str, Any], resume: str | None) -> Iterator[dict[str, Any]]:
    """The envelope's members after its ``{`` (or from inside the result array, see ``_scan_text``)."""
    while True:
        if resume is not None:
            yield from _records(scanner, resume)
            resume = None
        else:
            key = scanner.value()
            if not isinstance(key, str):
                raise ValueError("object key is not a string")
            scanner.expect(":")
            if key == "result" and scanner.peek() == "[":
                envelope["result"] = []
                scanner.expect("[")
                yield from _records(scanner, _ARRAY_START)
            else:
                envelope[key] = scanner.value()
                if key == "success" and envelope[key] is not True:
                    # Fail before yielding anything when the envelope says so up front.
                    return
        if scanner.peek() == ",":
            scanner.expect(",")
            continue
        scanner.expect("}")
        if scanner.peek() != "":
            raise ValueError("data after the end of the envelope")
        return


def _records(scanner: _TextScanner, resume: str) -> Iterator[dict[str, Any]]:
    """The records of the result array, up to and including its ``]``."""
    if resume == _ARRAY_START and scanner.peek() == "]":
        scanner.expect("]")
        return
    while True:
        record = scanner.value()
        if not isinstance(record, dict):
            raise ValueError("a result item is not an object")
        yield record
        if scanner.peek() == ",":
            scanner.expect(",")
            continue
        scanner.expect("]")
        return
