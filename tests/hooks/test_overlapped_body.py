"""Records parsed while a large body still arrives, and what a body cut mid-way does then.

A body past ``_PARSE_WHOLE_LIMIT`` is parsed as it arrives (a download thread feeds the parser).
A body cut after the parser has started is retried as before; the retry must repeat the bytes
already read (checked byte for byte), and then no record is lost or repeated.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from airflow_provider_cfbilling.exceptions import CloudflareServerError
from airflow_provider_cfbilling.hooks import pipe as pipe_module
from airflow_provider_cfbilling.hooks import transport as transport_module
from airflow_provider_cfbilling.hooks.cloudflare import CloudflareHook

ACCOUNT = "0123456789abcdef0123456789abcdef"
TOKEN = "cfTOKEN-abcdefghijklmnopqrstuvwxyz0123456"
RECORDS = 30_000  # about 2.7 MB: well past the 1 MiB limit


def _records(tag: str = "a") -> list[dict[str, Any]]:
    return [
        {"ChargePeriodStart": "2025-05-01T00:00:00Z", "x_BillableMetricId": f"metric_{tag}", "ConsumedQuantity": n}
        for n in range(RECORDS)
    ]


def _body(records: list[dict[str, Any]]) -> bytes:
    return json.dumps(
        {"result": records, "success": True, "errors": [], "messages": []}, separators=(",", ":")
    ).encode()


class _Stream(httpx.SyncByteStream):
    """A body in 64 KiB chunks; with ``cut_at``, a network error once that many bytes are sent
    (after ``gate`` is set, so the parser has started reading first)."""

    def __init__(self, body: bytes, cut_at: int | None = None, gate: threading.Event | None = None) -> None:
        self.body, self.cut_at, self.gate = body, cut_at, gate

    def __iter__(self) -> Iterator[bytes]:
        sent = 0
        while sent < len(self.body):
            end = min(sent + (1 << 16), len(self.body))
            if self.cut_at is not None and end > self.cut_at:
                if self.gate is not None:
                    assert self.gate.wait(30)
                yield self.body[sent : self.cut_at]
                raise httpx.ReadError("connection reset mid-body")
            yield self.body[sent:end]
            sent = end


class _Server:
    def __init__(self, *streams: _Stream) -> None:
        self.streams = list(streams)
        self.requests = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        stream = self.streams.pop(0) if len(self.streams) > 1 else self.streams[0]
        return httpx.Response(200, stream=_Stream(stream.body, stream.cut_at, stream.gate))


@pytest.fixture(autouse=True)
def _connection(monkeypatch: pytest.MonkeyPatch) -> None:
    connection = {"conn_type": "cloudflare", "password": TOKEN, "extra": {"account_id": ACCOUNT}}
    monkeypatch.setenv("AIRFLOW_CONN_CLOUDFLARE_DEFAULT", json.dumps(connection))
    monkeypatch.setattr(transport_module.time, "sleep", lambda seconds: None)


def _hook(server: _Server) -> CloudflareHook:
    return CloudflareHook(transport=httpx.MockTransport(server))


def _read_with_gate(records: Iterator[dict[str, Any]], gate: threading.Event) -> list[dict[str, Any]]:
    seen = []
    for record in records:
        seen.append(record)
        gate.set()  # the parser is reading: now the server cuts the body
    return seen


def test_a_large_body_streams_and_every_record_comes_once():
    body = _body(_records())
    server = _Server(_Stream(body))
    assert list(_hook(server).get_v2_usage(from_date="2025-05-01", to_date="2025-05-02")) == _records()
    assert server.requests == 1


def test_a_body_cut_after_parsing_began_is_retried_and_continued_without_duplicates():
    body = _body(_records())
    gate = threading.Event()
    server = _Server(_Stream(body, cut_at=1_500_000, gate=gate), _Stream(body))
    records = _hook(server).get_v2_usage(from_date="2025-05-01", to_date="2025-05-02")
    assert _read_with_gate(records, gate) == _records()
    assert server.requests == 2


def test_a_retry_cut_again_before_it_caught_up_keeps_checking_against_the_first_body():
    body = _body(_records())
    gate = threading.Event()
    server = _Server(
        _Stream(body, cut_at=2_000_000, gate=gate),
        _Stream(body, cut_at=1_100_000),  # cut before the 2 MB already read
        _Stream(body, cut_at=2_300_000),  # past them, then cut
        _Stream(body),
    )
    records = _hook(server).get_v2_usage(from_date="2025-05-01", to_date="2025-05-02")
    assert _read_with_gate(records, gate) == _records()
    assert server.requests == 4


def test_a_retry_with_other_bytes_fails_instead_of_mixing_two_bodies():
    gate = threading.Event()
    server = _Server(_Stream(_body(_records("a")), cut_at=1_500_000, gate=gate), _Stream(_body(_records("b"))))
    records = _hook(server).get_v2_usage(from_date="2025-05-01", to_date="2025-05-02")
    seen: list[dict[str, Any]] = []
    with pytest.raises(CloudflareServerError, match="different bytes"):
        seen = _read_with_gate(records, gate)
    assert all(record["x_BillableMetricId"] == "metric_a" for record in seen)


def test_a_retry_with_a_shorter_body_fails():
    gate = threading.Event()
    server = _Server(_Stream(_body(_records()), cut_at=1_500_000, gate=gate), _Stream(_body(_records()[:5])))
    records = _hook(server).get_v2_usage(from_date="2025-05-01", to_date="2025-05-02")
    with pytest.raises(CloudflareServerError):
        _read_with_gate(records, gate)


def test_retries_running_out_after_parsing_began_raise_from_the_records():
    body = _body(_records())
    gate = threading.Event()
    server = _Server(_Stream(body, cut_at=1_500_000, gate=gate))
    records = _hook(server).get_v2_usage(from_date="2025-05-01", to_date="2025-05-02")
    with pytest.raises(CloudflareServerError, match="Network error"):
        _read_with_gate(records, gate)
    assert server.requests > 1


def _download_threads_left(since: set[int | None], timeout: float = 10.0) -> list[threading.Thread]:
    """The download threads started after ``since`` (thread idents) that are still alive once they
    have had ``timeout`` seconds to end."""

    def started_since() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.ident not in since and t.name == "cfbilling-download"]

    deadline = time.monotonic() + timeout
    while started_since() and time.monotonic() < deadline:
        time.sleep(0.05)
    return started_since()


def test_a_reader_that_stops_early_ends_the_download_thread(monkeypatch):
    closed = []
    real_cancel = pipe_module.Pipe.cancel
    monkeypatch.setattr(pipe_module.Pipe, "cancel", lambda pipe: closed.append(1) or real_cancel(pipe))
    body = _body(_records() * 4)
    server = _Server(_Stream(body))
    before = {thread.ident for thread in threading.enumerate()}
    records = _hook(server).get_v2_usage(from_date="2025-05-01", to_date="2025-05-02")
    assert next(records)["ConsumedQuantity"] == 0
    records.close()  # type: ignore[attr-defined]
    assert closed
    assert _download_threads_left(since=before) == []


def test_the_switch_interval_is_shortened_only_while_a_body_streams():
    before = sys.getswitchinterval()
    server = _Server(_Stream(_body(_records())))
    records = _hook(server).get_v2_usage(from_date="2025-05-01", to_date="2025-05-02")
    assert next(records)["ConsumedQuantity"] == 0
    assert sys.getswitchinterval() <= max(pipe_module._STREAMING_SWITCH_INTERVAL, before)
    assert len(list(records)) == RECORDS - 1
    assert sys.getswitchinterval() == before


def test_an_iterator_dropped_before_its_first_record_ends_the_download_thread():
    import gc

    before = {thread.ident for thread in threading.enumerate()}
    server = _Server(_Stream(_body(_records() * 4)))
    records = _hook(server).get_v2_usage(from_date="2025-05-01", to_date="2025-05-02")
    del records
    gc.collect()
    assert _download_threads_left(since=before) == []
