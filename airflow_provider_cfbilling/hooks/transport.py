"""The wire: one retry conversation for every request, driven by a sync or an async client.

Every request goes through :meth:`Transport._conversation`, a generator that decides what to do
with each outcome; a sync driver (``httpx.Client``) and an async driver (``httpx.AsyncClient``,
for triggers) only perform its sends and sleeps. Bodies are spooled in full inside the retry loop
(so a connection cut mid-body is retried like any other transient failure) and parsed once. For
record streams on the sync driver, a body past 1 MiB is parsed while it is still being spooled
(a download thread feeds the parser, see ``Transport._overlapped_records``); a cut after parsing
began is retried the same way, and the retry must repeat, byte for byte, what was already read.
"""

from __future__ import annotations

import asyncio
import json
import logging
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

import httpx

from airflow_provider_cfbilling.exceptions import (
    CloudflareAPIError,
    CloudflareNotFoundError,
    CloudflareRequestError,
    CloudflareServerError,
)
from airflow_provider_cfbilling.hooks.envelope import (
    MalformedBodyError,
    check_envelope,
    classify_error,
    iter_envelope_records,
)
from airflow_provider_cfbilling.hooks.pipe import Pipe, stream_piped
from airflow_provider_cfbilling.hooks.settings import ConnectionSettings, parse_retry_after

log = logging.getLogger("airflow_provider_cfbilling.hooks.cloudflare")

# Bodies up to this size are parsed whole inside the retry loop (so a garbled one is retried);
# larger ones are parsed record by record by the caller.
_PARSE_WHOLE_LIMIT = 1 << 20
_SPOOL_MEMORY = 8 << 20


@dataclass(frozen=True)
class _Call:
    """One API request, validated and ready to send."""

    path: str  # with the account filled in
    endpoint: str  # the route template, for messages
    params: tuple[tuple[str, str], ...] = ()
    streams_records: bool = False


@dataclass
class _Body:
    status: int
    retry_after: str | None
    spool: IO[bytes]
    size: int
    result: Any = None
    result_info: Any = None  # the envelope's paging information, where there is one
    parsed: bool = False


@dataclass(frozen=True)
class _Send:
    call: _Call


@dataclass(frozen=True)
class _Sleep:
    seconds: float


class _Retryable(Exception):
    def __init__(self, error: CloudflareAPIError, retry_after: float | None) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry_after = retry_after


class Transport:
    """Sends requests for the hook: retries, spooling, the envelope."""

    _settings: ConnectionSettings | None
    _async_transport: httpx.AsyncBaseTransport | None

    if TYPE_CHECKING:  # provided by SettingsMixin and the hook

        @property
        def settings(self) -> ConnectionSettings: ...

        async def _asettings(self) -> ConnectionSettings: ...

        def _headers(self, settings: ConnectionSettings) -> dict[str, str]: ...

        def get_conn(self) -> httpx.Client: ...

    def redact(self, text: str) -> str:
        """``text`` with every credential of the connection replaced by ``***``."""
        settings = self._settings
        for secret in settings.secrets if settings else ():
            if secret:
                text = text.replace(secret, "***")
        return text

    def _conversation(self, call: _Call) -> Generator[_Send | _Sleep, _Body | BaseException | None, _Body]:
        """Decide, outcome by outcome, whether to retry, wait, fail or return; shared by both drivers."""
        retry = (self._settings or self.settings).retry
        attempt = 0
        while True:
            outcome = yield _Send(call)
            retry_after: float | None = None
            if isinstance(outcome, _Body):
                try:
                    return self._accept(outcome, call)  # the caller reads the body, then closes its spool
                except _Retryable as retryable:
                    error, retry_after = retryable.error, retryable.retry_after
                    outcome.spool.close()  # an answer that is retried (or fails below) is not read again
                except BaseException:
                    outcome.spool.close()
                    raise
            else:
                error = CloudflareServerError(
                    f"Network error talking to Cloudflare ({type(outcome).__name__}: {self.redact(str(outcome))[:200]})",
                    endpoint=call.endpoint,
                )
            if attempt >= retry.max_retries:
                raise error
            delay = retry.delay(attempt, retry_after)
            attempt += 1
            log.warning(
                "Cloudflare %s: %s; retry %d of %d in %.1f s",
                call.endpoint,
                error.summary if error.status is None else f"HTTP {error.status}",
                attempt,
                retry.max_retries,
                delay,
            )
            yield _Sleep(delay)

    def _accept(self, body: _Body, call: _Call) -> _Body:
        status = body.status
        if 200 <= status < 300:
            if call.streams_records and body.size > _PARSE_WHOLE_LIMIT:
                return body
            body.spool.seek(0)
            try:
                envelope = json.load(body.spool)
            except (ValueError, UnicodeDecodeError):
                raise _Retryable(
                    MalformedBodyError("The response body is not valid JSON", status=status, endpoint=call.endpoint),
                    None,
                )
            body.result = check_envelope(envelope, status, call.endpoint)
            body.result_info = envelope.get("result_info")
            body.parsed = True
            return body
        envelope = None
        if body.size <= _PARSE_WHOLE_LIMIT:
            body.spool.seek(0)
            try:
                envelope = json.load(body.spool)
            except (ValueError, UnicodeDecodeError):
                envelope = None
        if 300 <= status < 400:
            raise CloudflareRequestError(
                "Cloudflare answered with a redirect, which is never followed (credentials stay on the configured "
                "host); set the connection's host to the API's final URL",
                status=status,
                endpoint=call.endpoint,
            )
        error = classify_error(status, envelope, call.endpoint)
        if error.retryable:  # 408, 409, 429, 5xx: the one rule of exceptions.retryable_status
            raise _Retryable(error, parse_retry_after(body.retry_after))
        if error.status == 404 and 7003 in error.codes and "/accounts/{account_id}/" in call.endpoint:
            raise CloudflareNotFoundError(
                f"Cloudflare has no route {call.endpoint} (code 7003): the endpoint moved or is not enabled "
                "for this account",
                status=error.status,
                codes=error.codes,
                messages=error.messages,
                endpoint=error.endpoint,
            ) from error
        raise error

    def _run(self, call: _Call, send: Callable[[_Call], _Body | BaseException] | None = None) -> _Body:
        """The sync driver of :meth:`_conversation`; ``send`` performs one attempt (:meth:`_send`)."""
        send = send or self._send
        conversation = self._conversation(call)
        action = next(conversation)
        while True:
            try:
                if isinstance(action, _Sleep):
                    time.sleep(action.seconds)
                    action = conversation.send(None)
                else:
                    action = conversation.send(send(action.call))
            except StopIteration as finished:
                return finished.value  # type: ignore[no-any-return]

    def _records(self, call: _Call) -> Iterator[dict[str, Any]]:
        if not call.streams_records:
            return _iterate_body(self._run(call), call)
        return self._overlapped_records(call)

    def _overlapped_records(self, call: _Call) -> Iterator[dict[str, Any]]:
        """Records of a streamed call, parsed while the body still arrives (see :class:`Pipe`).

        A thread drives the same retry conversation as :meth:`_run` and spools every body as
        before; it also hands the bytes of a 2xx body to this thread. Until a 2xx body passes
        ``_PARSE_WHOLE_LIMIT`` nothing changes: the call returns (or raises) once the
        conversation ends, exactly as :meth:`_run`. Past it, the records are parsed as the bytes
        arrive. A body cut after that is retried by the conversation as before; the parser then
        checks that the new body starts with the bytes it has already read (byte for byte,
        against the cut body's spool) and carries on from there, so no record is repeated or
        lost. Should a retry return other bytes, or the retries run out, the records' iterator
        raises (the sinks write atomically, so nothing partial is published).
        """
        pipe: Pipe[_Body] = Pipe(call.endpoint, stream_after=_PARSE_WHOLE_LIMIT)
        thread = threading.Thread(target=self._drive_piped, args=(call, pipe), name="cfbilling-download", daemon=True)
        thread.start()
        try:
            body = pipe.wait_for_start()
        except BaseException:
            pipe.cancel()
            raise
        if body is not None:  # the conversation ended before any 2xx body passed the limit
            thread.join()
            return _iterate_body(body, call)
        records = stream_piped(pipe)
        # An iterator dropped before its first record never runs its finally: stop the download then.
        weakref.finalize(records, pipe.cancel)
        return records

    def _drive_piped(self, call: _Call, pipe: Pipe[_Body]) -> None:
        """The download thread: :meth:`_run`, sending with :meth:`_send_piped`; its outcome to ``pipe``."""
        try:
            body = self._run(call, lambda attempt: self._send_piped(attempt, pipe))
        except BaseException as error:  # handed to the parser's thread, which raises it
            pipe.finish(None, error)
        else:
            pipe.finish(body, None)

    def _send_piped(self, call: _Call, pipe: Pipe[_Body]) -> _Body | BaseException:
        """:meth:`_send`, also handing a 2xx body's bytes to ``pipe`` as they arrive."""
        client = self.get_conn()
        spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_MEMORY)  # noqa: SIM115 - handed to the caller
        try:
            with client.stream("GET", call.path, params=list(call.params)) as response:
                piped = pipe.begin(response.status_code, spool)
                size = 0
                for chunk in response.iter_bytes():
                    spool.write(chunk)
                    size += len(chunk)
                    if piped:
                        pipe.data(chunk)
                return _Body(response.status_code, response.headers.get("Retry-After"), spool, size)
        except httpx.TransportError as error:
            pipe.cut(spool)  # kept while the parser may compare the next attempt with it
            return error
        except BaseException:
            pipe.cut(spool)
            raise

    def _json(self, call: _Call) -> Any:
        body = self._run(call)
        body.spool.close()
        return body.result

    def _send(self, call: _Call) -> _Body | BaseException:
        client = self.get_conn()
        spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_MEMORY)  # noqa: SIM115 - handed to the caller
        try:
            with client.stream("GET", call.path, params=list(call.params)) as response:
                size = 0
                for chunk in response.iter_bytes():
                    spool.write(chunk)
                    size += len(chunk)
                return _Body(response.status_code, response.headers.get("Retry-After"), spool, size)
        except httpx.TransportError as error:
            spool.close()
            return error
        except BaseException:
            spool.close()
            raise

    async def _arun(self, call: _Call) -> _Body:
        settings = await self._asettings()
        conversation = self._conversation(call)
        async with httpx.AsyncClient(
            base_url=settings.base_url,
            headers=self._headers(settings),
            timeout=httpx.Timeout(settings.timeout, connect=min(settings.timeout, 15.0)),
            verify=settings.verify,
            follow_redirects=False,
            transport=self._async_transport,
        ) as client:
            action = next(conversation)
            while True:
                try:
                    if isinstance(action, _Sleep):
                        await asyncio.sleep(action.seconds)
                        action = conversation.send(None)
                    else:
                        action = conversation.send(await self._asend(client, action.call))
                except StopIteration as finished:
                    return finished.value  # type: ignore[no-any-return]

    async def _asend(self, client: httpx.AsyncClient, call: _Call) -> _Body | BaseException:
        spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_MEMORY)  # noqa: SIM115 - handed to the caller
        try:
            async with client.stream("GET", call.path, params=list(call.params)) as response:
                size = 0
                async for chunk in response.aiter_bytes():
                    spool.write(chunk)
                    size += len(chunk)
                return _Body(response.status_code, response.headers.get("Retry-After"), spool, size)
        except httpx.TransportError as error:
            spool.close()
            return error
        except BaseException:
            spool.close()
            raise

    async def _arecords(self, call: _Call) -> Iterator[dict[str, Any]]:
        return _iterate_body(await self._arun(call), call)


def _as_list(result: Any, endpoint: str) -> list[dict[str, Any]]:
    if result is None:
        return []
    if not isinstance(result, list):
        raise MalformedBodyError("The envelope's result is not a list", status=200, endpoint=endpoint)
    return result


def _iterate_body(body: _Body, call: _Call) -> Iterator[dict[str, Any]]:
    """Records of an accepted body: the parsed list, or a stream over the spooled bytes."""
    if body.parsed:
        body.spool.close()
        return iter(_as_list(body.result, call.endpoint))

    def stream() -> Iterator[dict[str, Any]]:
        try:
            body.spool.seek(0)
            yield from iter_envelope_records(body.spool, body.status, call.endpoint)
        finally:
            body.spool.close()

    return stream()
