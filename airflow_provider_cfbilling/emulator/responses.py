"""What the emulated API sends: the request and response types and the Cloudflare body shapes.

Knows nothing about sockets (``server.py`` sends a :class:`Response`) nor about routes (``api.py``). A
response body is bytes or a factory of byte chunks, produced lazily and callable again to regenerate
the same bytes, which the truncation fault relies on.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

#: Streamed record bodies are cut into chunks of about this size.
BODY_CHUNK_BYTES = 64 * 1024

encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


class ApiError(Exception):
    """A Cloudflare-style failure: HTTP status plus one error (with an optional ``error_chain``)."""

    def __init__(self, status: int, code: int, message: str, chain: Iterable[tuple[int, str]] = ()) -> None:
        super().__init__(f"{status} {code} {message}")
        self.status = status
        self.code = code
        self.message = message
        self.chain = tuple(chain)

    def error(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.chain:
            error["error_chain"] = [{"code": code, "message": message} for code, message in self.chain]
        return error


@dataclass
class Response:
    """A response to send: status, headers and a body (bytes, or a factory of byte chunks)."""

    status: int
    body: bytes | Callable[[], Iterator[bytes]]
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)

    def chunks(self) -> Iterator[bytes]:
        if isinstance(self.body, bytes):
            return iter((self.body,))
        return self.body()


@dataclass(frozen=True)
class Request:
    """The parts of an HTTP request the API cares about (``path`` is below ``/client/v4``)."""

    method: str
    path: str
    query: Mapping[str, list[str]]
    headers: Mapping[str, str]


def envelope(
    result: Any, messages: Iterable[Mapping[str, Any]] = (), result_info: Mapping[str, Any] | None = None
) -> bytes:
    body: dict[str, Any] = {"result": result}
    if result_info is not None:
        body["result_info"] = dict(result_info)
    body.update(success=True, errors=[], messages=list(messages))
    return encode(body).encode()


def error_body(errors: Iterable[Mapping[str, Any]]) -> bytes:
    return encode({"result": None, "success": False, "errors": list(errors), "messages": []}).encode()


def error_response(error: ApiError, headers: Iterable[tuple[str, str]] = ()) -> Response:
    return Response(error.status, error_body([error.error()]), headers=list(headers))


def records_body(records: Iterator[dict[str, Any]]) -> Iterator[bytes]:
    """Serialise records into ``{"result":[...],...}`` chunks of about ``BODY_CHUNK_BYTES``."""
    yield b'{"result":['
    parts: list[str] = []
    size = 0
    separator = ""
    for record in records:
        text = separator + encode(record)
        separator = ","
        parts.append(text)
        size += len(text)
        if size >= BODY_CHUNK_BYTES:
            yield "".join(parts).encode()
            parts = []
            size = 0
    parts.append('],"success":true,"errors":[],"messages":[]}')
    yield "".join(parts).encode()
