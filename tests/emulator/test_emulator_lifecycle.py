"""Server lifecycle: loopback only, free ports, keep-alive, bounded requests, clean and quick shutdown."""

from __future__ import annotations

import socket
import time

import httpx
import pytest
from emulator_helpers import BEARER, usage_path

from airflow_provider_cfbilling.emulator import Emulator


def test_base_url_and_free_ports() -> None:
    with Emulator() as first, Emulator() as second:
        assert first.base_url == f"http://127.0.0.1:{first.port}/client/v4"
        assert first.port != second.port
        assert first.control_url.endswith("/__emulator__")


def test_loopback_only() -> None:
    for host in ("0.0.0.0", "::", "192.168.1.10", "example.com"):
        with pytest.raises(ValueError):
            Emulator(host=host)
    with Emulator(host="localhost") as emu:
        assert emu.base_url.startswith("http://127.0.0.1:")


def test_start_and_stop_are_idempotent() -> None:
    emu = Emulator()
    assert emu.start() is emu
    port = emu.port
    assert emu.start().port == port
    emu.stop()
    emu.stop()
    assert not emu.running
    with pytest.raises(RuntimeError):
        _ = emu.base_url


def test_keep_alive_reuses_one_connection(emu: Emulator, client: httpx.Client) -> None:
    for _ in range(5):
        assert client.get(usage_path("v2")).status_code == 200
    client.get("/nope")  # errors keep the connection open too
    client.get(usage_path("v2"))
    assert emu.connections_accepted == 1


def test_stop_closes_idle_keep_alive_connections_quickly() -> None:
    emu = Emulator(handler_timeout=60).start()
    with httpx.Client(base_url=emu.base_url, headers=BEARER, verify=False) as http:
        http.get("/user/tokens/verify")
        started = time.monotonic()
        emu.stop()
        assert time.monotonic() - started < 2


def test_idle_connections_time_out() -> None:
    with Emulator(handler_timeout=0.2) as emu:
        sock = socket.create_connection(("127.0.0.1", emu.port), timeout=5)
        try:
            assert sock.recv(1) == b""  # the server hung up on an idle client
        finally:
            sock.close()


def raw_request(port: int, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(payload)
        chunks = []
        while True:
            data = sock.recv(65536)
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks)


def test_http_1_0_clients_get_a_whole_response(emu: Emulator) -> None:
    answer = raw_request(emu.port, b"GET /client/v4/nope HTTP/1.0\r\nHost: x\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 404")
    assert answer.endswith(b"}")


def test_oversized_request_body_is_refused(emu: Emulator) -> None:
    answer = raw_request(
        emu.port,
        b"POST /client/v4/nope HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\nConnection: close\r\n\r\n",
    )
    assert answer.startswith(b"HTTP/1.1 413")
