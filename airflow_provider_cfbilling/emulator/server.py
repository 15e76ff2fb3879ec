"""The emulator's HTTP transport: a loopback-only, keep-alive, streaming ``http.server``.

Responsibilities: one daemon thread per connection (tracked, so ``stop()`` can close and join them),
socket timeouts, bounded request bodies, streaming large bodies (``Content-Length`` when a body is small,
chunked transfer encoding when it is not), applying scripted faults and the rate limit in front of the
Cloudflare routes (``api.py`` answers them), writing the request log, and passing the control prefix
(``urls.CONTROL_PREFIX``) to the control API (``control.py``). :class:`RunningServer` is a started server
and its thread, what ``Emulator.start()`` creates and ``Emulator.stop()`` stops.
"""

from __future__ import annotations

import contextlib
import email.utils
import math
import socket
import sys
import threading
import time
import traceback
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from airflow_provider_cfbilling.emulator import api
from airflow_provider_cfbilling.emulator.auth import auth_scheme
from airflow_provider_cfbilling.emulator.clock import format_instant
from airflow_provider_cfbilling.emulator.control import handle_control
from airflow_provider_cfbilling.emulator.responses import ApiError, Request, Response, error_response
from airflow_provider_cfbilling.emulator.routes import route_request
from airflow_provider_cfbilling.emulator.urls import API_PREFIX, CONTROL_PREFIX, LOOPBACK_CLIENTS, api_url, under

if TYPE_CHECKING:
    from airflow_provider_cfbilling.emulator.faults import Fault
    from airflow_provider_cfbilling.emulator.state import EmulatorState

MAX_BODY_BYTES = 1024 * 1024
MAX_CONNECTIONS = 256
#: Bodies up to this size are sent with Content-Length; larger ones are streamed chunked.
STREAM_THRESHOLD = 256 * 1024
RATE_LIMIT_CODE = 971
RATE_LIMIT_MESSAGE = "Please wait and consider throttling your request speed"

_NOT_JSON_BODY = (
    b"<!DOCTYPE html>\n<html><head><title>Error | Cloudflare (emulated)</title></head>"
    b"<body><h1>Something went wrong</h1><p>This is an HTML page where JSON was expected.</p>"
    b"</body></html>\n"
)


def retry_after_value(seconds: float, http_date: bool) -> str:
    """``Retry-After`` as whole seconds, or as an HTTP date (real wall time, rounded up)."""
    if http_date:
        return email.utils.formatdate(math.ceil(time.time() + seconds), usegmt=True)
    return str(max(0, math.ceil(seconds)))


class RunningServer:
    """A started :class:`EmulatorHTTPServer` for ``emulator`` and the thread that serves it."""

    def __init__(self, emulator: EmulatorState, address: tuple[str, int], handler_timeout: float) -> None:
        self._server = EmulatorHTTPServer(emulator, address, handler_timeout)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.02},
            name=f"cfbilling-emulator-server-{self._server.server_address[1]}",
            daemon=True,
        )
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def connections_accepted(self) -> int:
        return int(self._server.connections_accepted)

    def stop(self, timeout: float) -> None:
        """Stop serving, close every connection and join the threads (each wait bounded by ``timeout``)."""
        server = self._server
        server.stopping.set()
        server.shutdown()
        server.server_close()
        server.close_connections(timeout)
        self._thread.join(timeout)


class EmulatorHTTPServer(ThreadingHTTPServer):
    """A ``ThreadingHTTPServer`` that tracks its connections so it can close and join them."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, emulator: EmulatorState, address: tuple[str, int], handler_timeout: float) -> None:
        self.emulator = emulator
        self.handler_timeout = handler_timeout
        self.stopping = threading.Event()
        self._connections: dict[threading.Thread, socket.socket] = {}
        self._connections_lock = threading.Lock()
        self.connections_accepted = 0
        super().__init__(address, EmulatorRequestHandler)

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/client/v4``: the API base URL this server answers on."""
        return api_url(f"http://127.0.0.1:{self.server_address[1]}")  # the emulator binds loopback only

    def verify_request(self, request: Any, client_address: Any) -> bool:
        if self.stopping.is_set() or client_address[0] not in LOOPBACK_CLIENTS:
            return False
        with self._connections_lock:
            return len(self._connections) < MAX_CONNECTIONS

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self._serve_connection,
            args=(request, client_address),
            name=f"cfbilling-emulator-conn-{client_address[1]}",
            daemon=True,
        )
        with self._connections_lock:
            self._connections[thread] = request
            self.connections_accepted += 1
        thread.start()

    def _serve_connection(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)
            with self._connections_lock:
                self._connections.pop(threading.current_thread(), None)

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, TimeoutError, OSError)) or self.stopping.is_set():
            return  # clients going away mid-response are normal (and provoked by the fault tests)
        traceback.print_exc(file=sys.stderr)

    def close_connections(self, timeout: float) -> None:
        """Shut every open connection down and wait (bounded) for its thread to finish."""
        with self._connections_lock:
            connections = list(self._connections.items())
        for _, sock in connections:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + timeout
        for thread, _ in connections:
            thread.join(max(0.0, deadline - time.monotonic()))

    @property
    def open_connections(self) -> int:
        with self._connections_lock:
            return len(self._connections)


class EmulatorRequestHandler(BaseHTTPRequestHandler):
    """Parses one request at a time on a keep-alive connection and answers it."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: EmulatorHTTPServer

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.handler_timeout)

    def version_string(self) -> str:
        return "cloudflare"

    def log_message(self, format: str, *args: Any) -> None:
        return  # the emulator keeps its own, secret-free request log

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    # -- request ---------------------------------------------------------------------------------

    def _read_body(self) -> bytes | None:
        """Read the request body (so the connection stays in sync); None if it was refused."""
        if self.headers.get("Transfer-Encoding", "").lower() not in ("", "identity"):
            self._send_plain(411, b'{"error":"send a Content-Length body"}')
            self.close_connection = True
            return None
        raw = self.headers.get("Content-Length") or "0"
        try:
            length = int(raw)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY_BYTES:
            self._send_plain(413, b'{"error":"request body too large"}')
            self.close_connection = True
            return None
        return self.rfile.read(length) if length else b""

    def _dispatch(self) -> None:
        split = urlsplit(self.path)
        path = split.path or "/"
        query = parse_qs(split.query, keep_blank_values=True)
        body = self._read_body()
        if body is None:
            return
        if under(path, CONTROL_PREFIX):
            status, payload, content_type = handle_control(
                self.server.emulator, self.command, path, query, body, self.client_address[0], self.server.base_url
            )
            self._send_plain(status, payload, content_type)
            return
        self._serve_api(path, query)

    # -- the Cloudflare API ----------------------------------------------------------------------

    def _serve_api(self, path: str, query: dict[str, list[str]]) -> None:
        emu = self.server.emulator
        traffic = emu.traffic
        headers = {name.lower(): value for name, value in self.headers.items()}
        presented = [headers.get(name, "") for name in ("authorization", "x-auth-key", "x-auth-email")]
        presented += [part for value in presented for part in value.split()]
        if under(path, API_PREFIX):
            route, params = route_request(path[len(API_PREFIX) :])
        else:
            route, params = "unknown", {}
        entry: dict[str, Any] = {
            "method": self.command,
            "path": traffic.redact_path(path, presented),
            "query": traffic.redact_query(query, presented),
            "auth_scheme": auth_scheme(headers),
            "status": None,
            "route": route,
            "fault": None,
            "time": format_instant(emu.now()),
        }

        latency, fault = traffic.select_faults(route)
        if latency > 0 and self.server.stopping.wait(latency):
            self.close_connection = True
            return
        truncate: Fault | None = None
        if fault is not None:
            entry["fault"] = fault.kind
            if fault.kind == "truncate":
                truncate = fault
            else:
                self._serve_fault(fault, entry)
                return

        limited = traffic.check_rate_limit()
        if limited is not None:
            seconds, http_date = limited
            error = ApiError(429, RATE_LIMIT_CODE, RATE_LIMIT_MESSAGE)
            response = error_response(error, [("Retry-After", retry_after_value(seconds, http_date))])
            entry["fault"] = entry["fault"] or "rate_limit_block"
        else:
            request = Request(self.command, path[len(API_PREFIX) :], query, headers)
            response = api.handle(emu, request, route, params)

        entry["status"] = response.status
        traffic.record_request(entry)
        if truncate is not None:
            self._send_truncated(response, truncate.mode)
        else:
            self._send_response(response)

    def _serve_fault(self, fault: Fault, entry: dict[str, Any]) -> None:
        traffic = self.server.emulator.traffic
        headers: list[tuple[str, str]] = []
        if fault.retry_after is not None:
            headers.append(("Retry-After", retry_after_value(fault.retry_after, fault.retry_after_http_date)))
        if fault.kind == "drop":
            traffic.record_request(entry)
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        status = int(fault.status or 500)
        if fault.kind == "not_json":
            response = Response(status, _NOT_JSON_BODY, "text/html; charset=utf-8", headers)
        elif fault.kind == "rate_limit":
            error = ApiError(429, fault.code or RATE_LIMIT_CODE, fault.message or RATE_LIMIT_MESSAGE)
            response = error_response(error, headers)
        else:
            reason = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
            default = (
                "Internal error (emulated success: false)"
                if fault.kind == "success_false"
                else f"{reason} (emulated {status})"
            )
            error = ApiError(status, fault.code or 10001, fault.message or default)
            response = error_response(error, headers)
        entry["status"] = response.status
        traffic.record_request(entry)
        self._send_response(response)

    # -- responses -------------------------------------------------------------------------------

    def _send_head(self, response: Response, length: int | None, chunked: bool) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        for name, value in response.headers:
            self.send_header(name, value)
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        elif length is not None:
            self.send_header("Content-Length", str(length))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()

    def _send_plain(self, status: int, payload: bytes, content_type: str = "application/json") -> None:
        self._send_head(Response(status, payload, content_type), len(payload), chunked=False)
        self.wfile.write(payload)

    def _write_chunk(self, data: bytes) -> None:
        if data:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def _send_response(self, response: Response) -> None:
        """Small bodies: Content-Length. Large ones: chunked, generated while being sent."""
        chunks = response.chunks()
        buffered: list[bytes] = []
        size = 0
        complete = True
        for chunk in chunks:
            buffered.append(chunk)
            size += len(chunk)
            if size >= STREAM_THRESHOLD:
                complete = False
                break
        if complete:
            self._send_head(response, size, chunked=False)
            self.wfile.write(b"".join(buffered))
            return
        if self.request_version != "HTTP/1.1":
            self.close_connection = True  # HTTP/1.0: no chunking, the end of the body is the close
            self._send_head(response, None, chunked=False)
            for chunk in buffered:
                self.wfile.write(chunk)
            for chunk in chunks:
                self.wfile.write(chunk)
            return
        self._send_head(response, None, chunked=True)
        try:
            for chunk in buffered:
                self._write_chunk(chunk)
            buffered = []
            for chunk in chunks:
                self._write_chunk(chunk)
            self.wfile.write(b"0\r\n\r\n")
        except Exception:
            self.close_connection = True
            raise

    def _send_truncated(self, response: Response, mode: str) -> None:
        """Announce the full body (Content-Length or chunked), send about half of it, then close."""
        total = sum(len(chunk) for chunk in response.chunks())
        target = total // 2
        self.close_connection = True
        self._send_head(response, total, chunked=mode == "chunked")
        sent = 0
        for chunk in response.chunks():
            if sent >= target:
                break
            piece = chunk[: target - sent]
            sent += len(piece)
            if mode == "chunked":
                self._write_chunk(piece)
            else:
                self.wfile.write(piece)
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)
