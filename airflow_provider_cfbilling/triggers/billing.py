"""The trigger that waits, in the triggerer, until a day's Cloudflare usage is available.

It also holds what the sensor and the trigger share about availability: which errors are worth
waiting out (:func:`is_transient`, from the errors' own ``retryable``) and how records are counted
(:func:`count_records_on_day`). HTTP, retries and ``Retry-After`` belong to the hook; this module
only decides when to ask again and when to give up.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow_provider_cfbilling.availability import count_records_on_day, error_event_payload, is_transient
from airflow_provider_cfbilling.endpoints import USAGE_SOURCES
from airflow_provider_cfbilling.exceptions import CloudflareAPIError, CloudflareInputError
from airflow_provider_cfbilling.version_compat import BaseTrigger, TriggerEvent

# The hook's constructor arguments that the sensor may pass through to the trigger.
HOOK_SETTINGS = ("timeout", "max_retries", "retry_after_max", "backoff_base", "backoff_max")


class CloudflareUsageAvailableTrigger(BaseTrigger):
    """Polls Cloudflare until a day has at least ``min_records`` usage records, then fires once.

    Each poll is one request through :class:`~airflow_provider_cfbilling.hooks.cloudflare.CloudflareHook`'s
    async methods, so 429 (honouring ``Retry-After``), 5xx and network errors are retried with
    backoff there. When the hook gives up on a transient error (the error's ``retryable``) the
    trigger logs it and polls again after ``poll_interval``; a permanent error (400/401/403/404,
    bad input) ends it at once. A poll in flight never outlives ``end_time``. The trigger never
    raises: an exception escaping ``run()`` would reach the task only as Airflow's generic
    "Trigger failure" (``TaskDeferralError``, retried like any failure), without its class.

    The one event it yields is a small JSON object:

    - ``{"status": "success", "records": n, "day": "YYYY-MM-DD", "account_id": ...}``
    - ``{"status": "error", "message": ..., "http_status": int | None, "codes": [int], "error_type": ...,
      "permanent": bool, "day": ..., "account_id": ..., ...}`` (see :func:`error_event_payload`):
      ``permanent`` is true for the provider's non-retryable errors, false for unexpected ones.
    - ``{"status": "timeout", "message": ..., "records": n | None, "last_error": str | None,
      "last_error_type": str | None, "last_http_status": int | None, "day": ..., "account_id": ...}``,
      once ``time.time() >= end_time``. ``last_error`` says why the last check got no answer, if
      it got none; ``last_error_type`` is set when that is a transient failure: the last check failed
      past the hook's retries, or it was cut short by the deadline and no check ever got an answer.
      The sensor then fails with that transient error, so that Airflow retries it.

    :param account_id: the account (32 hexadecimal characters), already resolved.
    :param day: the UTC day, ``YYYY-MM-DD``.
    :param end_time: the deadline, wall-clock epoch seconds (``time.time()`` based).
    :param source: ``"v2"`` or ``"paygo"``.
    :param metric: v2 only: the billable metric id to wait for.
    :param paygo_path: paygo only: the PayGo path (``billable-usage``, ``paygo-usage``, ``billing/usage/paygo``).
    :param organization_id: v2 only: check the usage of every account of this organization
        (``account_id`` is then empty). Absent from triggers serialized by earlier releases.
    :param from_date: the request's ``from``, ``YYYY-MM-DD`` (default ``day``); PayGo paths with the
        billing-cycle anchor rule start at the anchor day.
    :param min_records: how many records on ``day`` make it available.
    :param cloudflare_conn_id: the ``cloudflare`` connection.
    :param poll_interval: seconds between polls.
    :param first_poll_delay: seconds to wait before the first poll (default 0). The sensor passes its
        ``poll_interval``: it has just checked, so the next check is due one interval later, not at
        once. This also keeps the trigger from firing within moments of the deferral, the window in
        which Airflow 3 schedulers can fail the resumed task on the stale "success" its worker
        reported when it deferred (apache/airflow#66374, #71580, #72716).
    :param retry_settings: the hook's ``timeout``, ``max_retries``, ``retry_after_max``,
        ``backoff_base``, ``backoff_max`` (unset ones come from the connection).
    """

    def __init__(
        self,
        *,
        account_id: str,
        day: str,
        end_time: float,
        source: str = "v2",
        metric: str | None = None,
        paygo_path: str | None = None,
        organization_id: str | None = None,
        from_date: str | None = None,
        min_records: int = 1,
        cloudflare_conn_id: str = "cloudflare_default",
        poll_interval: float = 60.0,
        retry_settings: dict[str, Any] | None = None,
        first_poll_delay: float = 0.0,
    ) -> None:
        super().__init__()
        if source not in USAGE_SOURCES:
            raise CloudflareInputError("source", f"{source!r} is not a usage source", "Use 'v2' or 'paygo'")
        unknown = set(retry_settings or {}) - set(HOOK_SETTINGS)
        if unknown:
            raise CloudflareInputError(
                "retry_settings", f"unknown keys {sorted(unknown)}", f"Use only {', '.join(HOOK_SETTINGS)}"
            )
        self.account_id = account_id
        self.day = day
        self.end_time = float(end_time)
        self.source = source
        self.metric = metric
        self.paygo_path = paygo_path
        self.organization_id = organization_id or None
        self.from_date = from_date or day
        self.min_records = min_records
        self.cloudflare_conn_id = cloudflare_conn_id
        self.poll_interval = float(poll_interval)
        self.retry_settings = dict(retry_settings or {})
        self.first_poll_delay = float(first_poll_delay)
        if not self.first_poll_delay >= 0:  # also refuses NaN
            raise CloudflareInputError(
                "first_poll_delay", f"{first_poll_delay!r} is not 0 or more seconds", "Use 0 or a positive number"
            )

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "account_id": self.account_id,
                "day": self.day,
                "end_time": self.end_time,
                "source": self.source,
                "metric": self.metric,
                "paygo_path": self.paygo_path,
                "organization_id": self.organization_id,
                "from_date": self.from_date,
                "min_records": self.min_records,
                "cloudflare_conn_id": self.cloudflare_conn_id,
                "poll_interval": self.poll_interval,
                "retry_settings": dict(self.retry_settings),
                "first_poll_delay": self.first_poll_delay,
            },
        )

    def _hook(self) -> Any:
        from airflow_provider_cfbilling.hooks.cloudflare import CloudflareHook

        return CloudflareHook(self.cloudflare_conn_id, **self.retry_settings)

    async def _count(self, hook: Any) -> int:
        """One availability check: the narrowest request, then count the records on the day."""
        day = dt.date.fromisoformat(self.day)
        to_date = day + dt.timedelta(days=1)
        if self.organization_id:
            records = await hook.aget_organization_usage(self.organization_id, day, to_date)
        elif self.source == "v2":
            records = await hook.aget_v2_usage(self.account_id, day, to_date, self.metric)
        else:
            from_date = dt.date.fromisoformat(self.from_date)
            records = await hook.aget_paygo_usage(self.account_id, from_date, to_date, self.paygo_path)
        # Parsing the downloaded body is CPU work: off the triggerer's event loop, which other triggers share.
        return await asyncio.to_thread(count_records_on_day, records, day, self.metric)

    def _event(self, payload: dict[str, Any]) -> TriggerEvent:
        return TriggerEvent({**payload, "day": self.day, "account_id": self.account_id})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = self._hook()
        polls = 0
        last_count: int | None = None
        last_error: str | None = None
        last_error_type: str | None = None
        last_http_status: int | None = None
        if self.first_poll_delay > 0:
            await asyncio.sleep(max(0.0, min(self.first_poll_delay, self.end_time - time.time())))
        while True:
            remaining = self.end_time - time.time()
            if remaining <= 0:
                break
            polls += 1
            try:
                # The hook's retries (Retry-After included) may take long; they never run past end_time.
                count = await asyncio.wait_for(self._count(hook), timeout=remaining)
            except asyncio.TimeoutError:
                # A check cut short by the deadline says nothing new once an earlier one was answered;
                # if none ever was, that is as transient as the errors before.
                if last_count is None:
                    last_error = last_error or "the last check was still retrying at the deadline"
                    last_error_type = last_error_type or "CloudflareServerError"
                break
            except Exception as error:
                if not is_transient(error):
                    payload = error_event_payload(error, day=self.day, account_id=self.account_id, redact=hook.redact)
                    self.log.error(
                        "Usage check of %s failed and will not be retried%s: %s",
                        self.day,
                        "" if payload["permanent"] else " (unexpected error)",
                        payload["message"],
                    )
                    yield TriggerEvent(payload)
                    return
                last_error = hook.redact(str(error))
                last_error_type = type(error).__name__
                last_http_status = error.status if isinstance(error, CloudflareAPIError) else None
                self.log.warning(
                    "Usage check %d of %s failed after the hook's retries (%s); polling again in %g s",
                    polls,
                    self.day,
                    last_error,
                    self.poll_interval,
                )
            else:
                last_count, last_error, last_error_type, last_http_status = count, None, None, None
                if count >= self.min_records:
                    self.log.info("Usage of %s is available: %d record(s) after %d check(s)", self.day, count, polls)
                    yield self._event({"status": "success", "records": count})
                    return
                self.log.info(
                    "Usage of %s not available yet: %d of %d record(s); checking again in %g s",
                    self.day,
                    count,
                    self.min_records,
                    self.poll_interval,
                )
            await asyncio.sleep(max(0.0, min(self.poll_interval, self.end_time - time.time())))
        message = (
            f"Usage of {self.day} for account {self.account_id} was not available before the sensor's timeout: "
            f"{'no successful check' if last_count is None else f'{last_count} of {self.min_records} record(s)'}"
            f" after {polls} check(s)" + (f"; last error: {last_error}" if last_error else "")
        )
        yield self._event(
            {
                "status": "timeout",
                "message": message,
                "records": last_count,
                "last_error": last_error,
                "last_error_type": last_error_type,
                "last_http_status": last_http_status,
            }
        )


__all__ = ["CloudflareUsageAvailableTrigger"]
