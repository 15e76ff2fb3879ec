"""The sensor that waits until a day's Cloudflare usage is available.

Available means: at least ``min_records`` records whose ``ChargePeriodStart`` falls on the day
(UTC). Each check is the narrowest request that answers it: that one day (``from=day``,
``to=day+1``) and the metric when given. In poke and reschedule modes the sensor checks with the
sync hook; with ``deferrable=True`` it checks once and hands the wait to
:class:`~airflow_provider_cfbilling.triggers.billing.CloudflareUsageAvailableTrigger`.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_cfbilling import validation, windows
from airflow_provider_cfbilling.availability import (
    TRANSIENT_ERRORS,
    count_records_on_day,
    error_from_event,
    is_permanent,
    is_transient,
)
from airflow_provider_cfbilling.exceptions import CloudflareAPIError, CloudflareInputError
from airflow_provider_cfbilling.triggers.billing import CloudflareUsageAvailableTrigger
from airflow_provider_cfbilling.version_compat import (
    AirflowException,
    AirflowSensorTimeout,
    AirflowSkipException,
    BaseSensorOperator,
    default_deferrable,
)

if TYPE_CHECKING:
    from airflow_provider_cfbilling.hooks.cloudflare import CloudflareHook

# Without the anchor (its info endpoint failing), a range this long contains every anchor day.
_ANCHOR_FALLBACK_DAYS = 30


@dataclass(frozen=True)
class _Check:
    """The rendered, validated parameters of one run's checks."""

    day: dt.date
    account_id: str  # "" when the organization's usage is checked
    metric: str | None
    paygo_path: str | None
    organization_id: str | None = None


class CloudflareUsageAvailableSensor(BaseSensorOperator):
    """Waits until Cloudflare has a day's usage: at least ``min_records`` records whose
    ``ChargePeriodStart`` falls on ``day``.

    Each check asks for that day alone (``from=day``, ``to=day+1``, and the metric when given) and
    counts only records of the day, whatever the server's reading of ``to``. On the PayGo paths
    ``billable-usage`` and ``paygo-usage`` the server returns nothing unless the range contains the
    subscription's billing-cycle anchor day, so there the request starts at the latest anchor day
    on or before ``day`` (read once per run from the path's info endpoint; if that fails
    transiently, 30 days before ``day``), still counting only the records of ``day``.

    Bad credentials, missing permissions, unknown routes, bad parameters (HTTP 400/401/403/404) and
    bad input fail the task at once and **without Airflow retries** (the errors are Airflow
    ``AirflowFailException`` subclasses), in every mode, deferred too; with ``soft_fail=True`` (or
    ``never_fail=True``) the task is skipped instead, as Airflow's sensors do with such errors.
    Rate limits and server errors are retried by the hook (honouring ``Retry-After``); when its
    retries run out the check counts as "not yet" and the sensor asks again after
    ``poke_interval`` (``poll_interval`` when deferred), until ``timeout``. At ``timeout`` the task
    fails with ``AirflowSensorTimeout`` (no Airflow retries, skipped with ``soft_fail``), unless the
    last check itself failed that way: then it fails with that transient error
    (``CloudflareServerError`` or ``CloudflareRateLimitError``), which Airflow's ``retries`` retry.

    The XCom return value is the number of records found on the day.

    :param day: the UTC day to wait for (``YYYY-MM-DD``, a date, or a datetime at 00:00 UTC).
        Default: the last day of the run's data interval, else the UTC day before the logical
        date (or ``run_after``). Templated.
    :param account_id: the account (32 hexadecimal characters); default the connection's
        ``extra.account_id``. Templated.
    :param metric: v2 only: wait for this billable metric (``x_BillableMetricId``). Templated.
    :param source: ``"v2"`` (default, ``/billable/usage``) or ``"paygo"``.
    :param paygo_path: with ``source="paygo"``: ``billable-usage``, ``paygo-usage`` or
        ``billing/usage/paygo``; default the connection's ``extra.paygo_path``. Templated.
    :param organization_id: with ``source="v2"``: wait for the usage of every account of this
        organization (``GET /organizations/{id}/billable/usage``); default the connection's
        ``extra.organization_id``. An error together with ``account_id``. Templated.
    :param min_records: how many records on the day make it available (default 1).
    :param cloudflare_conn_id: the ``cloudflare`` connection (default ``cloudflare_default``).
    :param deferrable: hand the wait to the triggerer; default ``[operators] default_deferrable``.
    :param poll_interval: seconds between checks in the trigger; default ``poke_interval``.
    :param request_timeout: per-request timeout in seconds; default the connection's.
    :param max_retries: the hook's retries of 408/409/429/5xx and network errors per check;
        default the connection's (else 8).
    :param retry_after_max: the longest ``Retry-After`` honoured, in seconds (default 360).
    :param backoff_base: the hook's first backoff in seconds (default 1).
    :param backoff_max: the hook's longest backoff in seconds (default 60).
    """

    template_fields: Sequence[str] = ("day", "account_id", "metric", "paygo_path", "organization_id")
    ui_color = "#f6821f"

    def __init__(
        self,
        *,
        day: Any = None,
        account_id: str | None = None,
        metric: str | None = None,
        source: str = "v2",
        paygo_path: str | None = None,
        organization_id: str | None = None,
        min_records: int = 1,
        cloudflare_conn_id: str = "cloudflare_default",
        deferrable: bool | None = None,
        poll_interval: float | dt.timedelta | None = None,
        request_timeout: float | None = None,
        max_retries: int | None = None,
        retry_after_max: float | None = None,
        backoff_base: float | None = None,
        backoff_max: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        validation.usage_arguments(source, metric, paygo_path)
        validation.whole_number(min_records, "min_records", minimum=1, fix="Use e.g. min_records=1")
        if poll_interval is None:
            poll_interval = self.poke_interval
        elif isinstance(poll_interval, dt.timedelta):
            poll_interval = poll_interval.total_seconds()
        self.poll_interval = validation.positive_number(poll_interval, "poll_interval", allow_zero=False)
        hook_settings: dict[str, Any] = {}
        for name, key, value in (
            ("request_timeout", "timeout", request_timeout),
            ("max_retries", "max_retries", max_retries),
            ("retry_after_max", "retry_after_max", retry_after_max),
            ("backoff_base", "backoff_base", backoff_base),
            ("backoff_max", "backoff_max", backoff_max),
        ):
            if value is not None:
                number = validation.positive_number(
                    value, name, allow_zero=name != "request_timeout", integer=name == "max_retries"
                )
                hook_settings[key] = int(number) if name == "max_retries" else number
        self.day = day
        self.account_id = account_id
        self.metric = metric
        self.source = source
        self.paygo_path = paygo_path
        self.organization_id = organization_id
        self.min_records = min_records
        self.cloudflare_conn_id = cloudflare_conn_id
        self.deferrable = default_deferrable() if deferrable is None else bool(deferrable)
        self.hook_settings = hook_settings
        self._hook: CloudflareHook | None = None
        self._check: _Check | None = None
        self._from_date: dt.date | None = None
        self._records_found: int | None = None
        # The transient error of the last check, if it failed (None after a check that got an answer).
        self._last_error: CloudflareAPIError | None = None

    # ------------------------------------------------------------------ parameters

    @property
    def hook(self) -> CloudflareHook:
        """The sync hook of this run (created on first use, never at DAG-parse time)."""
        if self._hook is None:
            from airflow_provider_cfbilling.hooks.cloudflare import CloudflareHook

            self._hook = CloudflareHook(self.cloudflare_conn_id, **self.hook_settings)
        return self._hook

    def _prepare(self, context: Any) -> _Check:
        """Render-time checks of the templated parameters, before any request is sent."""
        if self._check is not None:
            return self._check
        day = windows.resolve_day(self.day, context)
        metric = validation.metric(self.metric or None)
        scope = self.hook.resolve_usage_scope(self.account_id or None, self.organization_id or None, source=self.source)
        organization_id = scope.organization_id
        account_id = scope.account_id or ""
        paygo_path = None
        if self.source == "paygo":
            paygo_path = validation.paygo_path(self.paygo_path or self.hook.settings.paygo_path)
        self._check = _Check(
            day=day, account_id=account_id, metric=metric, paygo_path=paygo_path, organization_id=organization_id
        )
        return self._check

    def _request_from(self, check: _Check) -> dt.date:
        """The request's ``from``: the day, or for PayGo paths with the anchor rule the latest
        billing-cycle anchor day on or before it (read once per run from the info endpoint; while
        that fails transiently, a day early enough to contain any anchor day)."""
        if check.paygo_path not in windows.ANCHOR_RULE_PATHS:
            return check.day
        if self._from_date is None:
            try:
                info = self.hook.get_paygo_usage_info(check.account_id, check.paygo_path)
            except CloudflareAPIError as error:
                if not is_transient(error):
                    raise
                fallback = check.day - dt.timedelta(days=_ANCHOR_FALLBACK_DAYS)
                self.log.warning(
                    "The billing-cycle anchor of PayGo %s could not be read (%s); this request starts at %s",
                    check.paygo_path,
                    self.hook.redact(str(error)),
                    fallback,
                )
                return fallback
            self._from_date = windows.anchored_start(info, check.day)
            self.log.info(
                "PayGo %s: requests start at the billing-cycle anchor day %s", check.paygo_path, self._from_date
            )
        return self._from_date

    def _trigger_from(self, check: _Check) -> dt.date:
        """The trigger's ``from_date``, from what the checks so far learnt (no request)."""
        if check.paygo_path not in windows.ANCHOR_RULE_PATHS:
            return check.day
        return self._from_date or check.day - dt.timedelta(days=_ANCHOR_FALLBACK_DAYS)

    # ------------------------------------------------------------------ checking

    def _count(self, check: _Check) -> int:
        """One availability check with the sync hook: the number of records on the day."""
        to_date = check.day + dt.timedelta(days=1)
        if check.organization_id:
            records = self.hook.get_organization_usage(check.organization_id, check.day, to_date)
        elif self.source == "v2":
            records = self.hook.get_v2_usage(check.account_id, check.day, to_date, check.metric)
        else:
            records = self.hook.get_paygo_usage(check.account_id, self._request_from(check), to_date, check.paygo_path)
        return count_records_on_day(records, check.day, check.metric)

    def _available(self, check: _Check) -> bool:
        """Check once; permanent errors raise, transient ones (past the hook's retries) are "not yet"."""
        try:
            count = self._count(check)
        except CloudflareAPIError as error:
            if not is_transient(error):
                raise
            self._last_error = error
            self.log.warning(
                "Usage check of %s failed after the hook's retries (%s); trying again at the next check",
                check.day,
                self.hook.redact(str(error)),
            )
            return False
        self._last_error = None
        self._records_found = count
        what = f" of metric {check.metric}" if check.metric else ""
        self.log.info(
            "Usage%s of %s on %s: %d record(s), %d needed",
            what,
            f"organization {check.organization_id}" if check.organization_id else f"account {check.account_id}",
            check.day,
            count,
            self.min_records,
        )
        return count >= self.min_records

    def poke(self, context: Any) -> bool:
        return self._available(self._prepare(context))

    # ------------------------------------------------------------------ failing

    def _skip_if_asked(self, error: BaseException) -> None:
        """With ``soft_fail`` (or ``never_fail``), a permanent error skips the task instead of
        failing it: what Airflow's sensors do with an ``AirflowFailException`` raised by ``poke``,
        applied here to the errors raised outside it (checks before the first poke, the deferrable
        mode's own check, the trigger's error event), so every mode behaves alike."""
        for flag in ("soft_fail", "never_fail"):
            if getattr(self, flag, False):
                raise AirflowSkipException(f"{error} ({flag}: skipping)") from error

    def _timed_out(self, message: str, last_error: CloudflareAPIError) -> CloudflareAPIError:
        """The error for a timeout whose last check failed transiently: of that error's class, so it
        is not an ``AirflowSensorTimeout`` and Airflow's retries apply."""
        return type(last_error)(
            f"{message}; the last check failed after the hook's retries: {self.hook.redact(last_error.summary)}",
            status=last_error.status,
            codes=last_error.codes,
            messages=[self.hook.redact(text) for text in last_error.messages],
            endpoint=last_error.endpoint,
        )

    def _poke_until_available(self, context: Any) -> Any:
        """Airflow's poke loop (poke and reschedule modes), with the timeout made retryable when
        the last check failed transiently."""
        try:
            super().execute(context)
        except AirflowSensorTimeout as timeout:
            if self._last_error is None or self._check is None:
                raise
            check = self._check
            message = (
                f"Usage of {check.day} for account {check.account_id} could not be checked before the sensor's "
                f"timeout ({str(timeout).rstrip('.')})"
            )
            raise self._timed_out(message, self._last_error) from timeout
        return self._records_found

    # ------------------------------------------------------------------ execution

    def execute(self, context: Any) -> Any:
        started = time.time()
        self._check = self._from_date = self._records_found = self._last_error = None
        try:
            check = self._prepare(context)
            if not self.deferrable:
                return self._poke_until_available(context)
            if self._available(check):
                return self._records_found
        except (CloudflareAPIError, CloudflareInputError) as error:
            # Airflow's poke loop already skipped on these with soft_fail; checks outside it did not.
            if is_permanent(error):
                self._skip_if_asked(error)
            raise
        finally:
            if self._hook is not None:
                self._hook.close()
        self.log.info(
            "Usage of %s not available yet; deferring (polling every %g s, for at most %g s)",
            check.day,
            self.poll_interval,
            self.timeout,
        )
        self.defer(
            trigger=CloudflareUsageAvailableTrigger(
                account_id=check.account_id,
                organization_id=check.organization_id,
                day=check.day.isoformat(),
                end_time=started + self.timeout,
                source=self.source,
                metric=check.metric,
                paygo_path=check.paygo_path,
                from_date=self._trigger_from(check).isoformat(),
                min_records=self.min_records,
                cloudflare_conn_id=self.cloudflare_conn_id,
                poll_interval=self.poll_interval,
                retry_settings=self.hook_settings,
                # This task has just checked: the trigger's first check is one interval later.
                first_poll_delay=self.poll_interval,
            ),
            method_name="execute_complete",
            timeout=dt.timedelta(seconds=self.timeout),
        )

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> int:
        """Resumes after the trigger: the record count on success, else a clear task failure.

        ``timeout`` raises ``AirflowSensorTimeout`` (``AirflowSkipException`` with ``soft_fail``), or
        the transient error of the last check when it failed (Airflow retries it). ``error`` raises
        the permanent error the trigger met, as its own class (``CloudflareAuthError``, ...: no
        Airflow retries; skipped with ``soft_fail``/``never_fail``), or ``AirflowException`` for an
        unexpected error; each with Cloudflare's status, codes and message.
        """
        event = event or {}
        status = event.get("status")
        if status == "success":
            records = int(event.get("records") or 0)
            self.log.info(
                "Usage of account %s on %s is available: %d record(s)",
                event.get("account_id"),
                event.get("day"),
                records,
            )
            return records
        if status == "timeout":
            message = str(event.get("message") or "The sensor timed out waiting for Cloudflare usage")
            if self.soft_fail:
                raise AirflowSkipException(f"{message} (soft_fail: skipping)")
            transient = TRANSIENT_ERRORS.get(str(event.get("last_error_type")))
            if transient is None and event.get("last_error_type"):
                transient = CloudflareAPIError  # a retryable answer without its own class (408, 409, 200)
            if transient is not None:
                raise transient(message, status=event.get("last_http_status"))
            raise AirflowSensorTimeout(message)
        if status == "error":
            error = error_from_event(event)
            if is_permanent(error):
                self._skip_if_asked(error)
            raise error
        raise AirflowException(f"Unexpected event from CloudflareUsageAvailableTrigger: {event!r}")


__all__ = ["CloudflareUsageAvailableSensor"]
