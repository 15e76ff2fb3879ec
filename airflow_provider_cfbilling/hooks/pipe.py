"""A 2xx body's bytes on their way from the download thread to the record parser.

The sync driver of :mod:`.transport` parses a record stream while its body still arrives: a
download thread runs the retry conversation and feeds :class:`Pipe`, and the caller's thread
parses what it reads from it. The pipe carries the checks that make a retried body safe to
continue (a retry after a cut must repeat, byte for byte, what the parser has read), bounds what
waits between the two threads, and lets either side stop the other.
"""

from __future__ import annotations

import sys
import threading
from collections import deque
from collections.abc import Iterator
from typing import IO, Any, Generic, Protocol, TypeVar

from airflow_provider_cfbilling.exceptions import CloudflareServerError
from airflow_provider_cfbilling.hooks.envelope import iter_envelope_records


class SpooledBody(Protocol):
    """What the download thread ends with (the transport's ``_Body``), as far as the pipe reads it."""

    spool: IO[bytes]
    parsed: bool


Outcome = TypeVar("Outcome", bound=SpooledBody)

# The most body bytes waiting between the download thread and the parser: past it, the download
# waits (the parser is faster than the emulator and than most links, so it rarely does).
_PIPE_MAX_QUEUED = 2 << 20


class Cancelled(Exception):
    """The parser stopped reading: the download thread ends."""


class Pipe(Generic[Outcome]):
    """A 2xx body's bytes, from the download thread (``begin``, ``data``, ``cut``, ``finish``)
    to the parser (``wait_for_start``, ``read``), with the checks that make a retried body safe
    to continue."""

    def __init__(self, endpoint: str, stream_after: int) -> None:
        self.endpoint = endpoint
        self._stream_after = stream_after  # a 2xx body is parsed while it arrives once it is longer
        self.status = 200  # of the attempt being read
        self._lock = threading.Condition()
        self._chunks: deque[bytes] = deque()
        self._queued = 0
        self._attempt = 0  # attempts begun (any status)
        self._ok = False  # the current attempt is a 2xx
        self._received = 0  # bytes of the current attempt
        self._spools: dict[int, IO[bytes]] = {}  # attempt -> its spool, while it may be compared
        self._done = False
        self._outcome: Outcome | None = None
        self._error: BaseException | None = None
        self._cancelled = False
        self._status = 0
        # The parser's side.
        self._streaming = False
        self._reading = 0  # the attempt whose bytes the parser reads
        self._consumed = 0  # bytes handed to the parser
        self._reference: IO[bytes] | None = None  # a cut attempt's spool: what a retry must repeat
        self._checked = 0  # bytes of the current attempt compared with the reference

    # -- the download thread -------------------------------------------------------------------

    def begin(self, status: int, spool: IO[bytes]) -> bool:
        with self._lock:
            if self._cancelled:
                raise Cancelled
            self._attempt += 1
            self._ok = 200 <= status < 300
            self._status = status
            self._received = 0
            self._chunks.clear()
            self._queued = 0
            if self._ok:
                self._spools[self._attempt] = spool
            self._lock.notify_all()
            return self._ok

    def data(self, chunk: bytes) -> None:
        if not chunk:
            return
        with self._lock:
            while self._queued > _PIPE_MAX_QUEUED and not self._cancelled:
                self._lock.wait()
            if self._cancelled:
                raise Cancelled
            self._chunks.append(chunk)
            self._queued += len(chunk)
            self._received += len(chunk)
            self._lock.notify_all()

    def cut(self, spool: IO[bytes]) -> None:
        """An attempt ended without a body (network error, cancelled): keep its spool only while
        the parser has read from it and not yet matched a retry against it."""
        with self._lock:
            attempt = next((number for number, kept in self._spools.items() if kept is spool), None)
            keep = attempt is not None and self._streaming and attempt == self._reading and not self._cancelled
            if attempt is not None and not keep:
                del self._spools[attempt]
            self._lock.notify_all()
        if not keep:
            spool.close()

    def finish(self, body: Outcome | None, error: BaseException | None) -> None:
        with self._lock:
            self._done, self._outcome, self._error = True, body, error
            cancelled = self._cancelled
            self._lock.notify_all()
        if cancelled and body is not None:
            body.spool.close()

    # -- the parser's thread -------------------------------------------------------------------

    def wait_for_start(self) -> Outcome | None:
        """The conversation's body when it ends first (raising its error); None once a 2xx body
        has passed ``_PARSE_WHOLE_LIMIT`` (then :meth:`read` streams it)."""
        with self._lock:
            while True:
                if self._done:
                    if self._error is not None:
                        raise self._error
                    return self._outcome
                if self._ok and self._received > self._stream_after:
                    self._streaming = True
                    self._reading = self._attempt
                    self.status = self._status
                    return None
                self._lock.wait()

    def read(self, size: int) -> bytes:
        with self._lock:
            while True:
                if (
                    self._attempt != self._reading
                    and self._ok
                    and self._reading in self._spools
                    and self._attempt in self._spools  # not an attempt already cut and dropped
                ):
                    self._switch()  # a retry's 2xx body: compare it with what was read, then go on
                if self._chunks and self._attempt == self._reading and self._ok:
                    data = self._take(size)
                    if self._reference is not None:
                        data = self._compare(data)
                        if not data:
                            continue
                    self._consumed += len(data)
                    self._lock.notify_all()
                    return data
                if self._done and (not self._chunks or self._attempt != self._reading):
                    return self._end()
                self._lock.wait()

    def _take(self, size: int) -> bytes:
        taken: list[bytes] = []
        length = 0
        while self._chunks and length < size:
            chunk = self._chunks.popleft()
            taken.append(chunk)
            length += len(chunk)
        self._queued -= length
        return b"".join(taken)

    def _switch(self) -> None:
        previous = self._spools.pop(self._reading)
        if self._reference is None:
            # The cut attempt holds every byte read so far: it is the reference from now on.
            if self._reference is not None:
                self._reference.close()
            self._reference = previous
        else:
            previous.close()  # cut again before it repeated what was read: the old reference stays
        self._reading = self._attempt
        self.status = self._status
        self._checked = 0
        self._reference.seek(0)

    def _compare(self, data: bytes) -> bytes:
        """Check the retried body's first bytes against the reference; what lies beyond them."""
        assert self._reference is not None
        overlap = min(len(data), self._consumed - self._checked)
        if self._reference.read(overlap) != data[:overlap]:
            self._cancelled = True
            self._lock.notify_all()
            raise CloudflareServerError(
                "Cloudflare sent different bytes when a response cut mid-body was retried, so the records "
                "already read cannot be continued; the task can be retried as a whole",
                endpoint=self.endpoint,
            )
        self._checked += overlap
        if self._checked >= self._consumed:
            self._reference.close()
            self._reference = None
        return data[overlap:]

    def _end(self) -> bytes:
        if self._error is not None:
            raise self._error
        body = self._outcome
        assert body is not None
        if self._attempt != self._reading or self._reference is not None or body.parsed:
            body.spool.close()  # a shorter body than what was read, or none of it
            raise CloudflareServerError(
                "Cloudflare's response was cut mid-body and the retry returned a shorter body; the task can be "
                "retried as a whole",
                endpoint=self.endpoint,
            )
        body.spool.close()  # every byte came through the pipe
        return b""

    def cancel(self) -> None:
        """The parser stops: the download thread ends at its next chunk, and spools are closed."""
        with self._lock:
            self._cancelled = True
            spools = list(self._spools.values())
            self._spools.clear()
            if self._reference is not None:
                spools.append(self._reference)
                self._reference = None
            self._lock.notify_all()
        for spool in spools:
            spool.close()


# While a body is parsed as it arrives, the download thread needs the GIL for every 64 KiB the
# socket returns; with the default switch interval (5 ms) a busy parser lets it run about once
# per interval, which caps the download at ~13 MB/s. A shorter interval, only while a body
# streams, lets the download keep up with the link.
_STREAMING_SWITCH_INTERVAL = 0.0005
_switch_lock = threading.Lock()
_streams = 0
_saved_interval = 0.0


def _faster_switching(on: bool) -> None:
    global _streams, _saved_interval
    with _switch_lock:
        if on:
            _streams += 1
            if _streams == 1:
                _saved_interval = sys.getswitchinterval()
                if _saved_interval > _STREAMING_SWITCH_INTERVAL:
                    sys.setswitchinterval(_STREAMING_SWITCH_INTERVAL)
        else:
            _streams -= 1
            if _streams == 0 and _saved_interval > _STREAMING_SWITCH_INTERVAL:
                sys.setswitchinterval(_saved_interval)


def stream_piped(pipe: Pipe[Any]) -> Iterator[dict[str, Any]]:
    """The records of the body the parser reads from ``pipe``; the download stops when they do."""
    _faster_switching(True)
    try:
        yield from iter_envelope_records(pipe, pipe.status, pipe.endpoint)  # type: ignore[arg-type]
    finally:
        _faster_switching(False)
        pipe.cancel()
