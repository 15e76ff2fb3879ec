"""Operators that pull Cloudflare billing data and land it in XCom or object storage.

The data's way: the window is planned into requests that fit the endpoint's range limit -> the
hook fetches each -> records are kept only when ``ChargePeriodStart`` lies inside the request's
share of the window (and, for v2, the metric matches), then put in the chosen key style -> a sink:
XCom (bounded by ``max_xcom_records``), one atomically written object, or with ``{charge_date}``
one object per UTC day; the summary becomes the XCom value.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_cfbilling import usage, validation, windows
from airflow_provider_cfbilling.exceptions import CloudflareInputError
from airflow_provider_cfbilling.operators.base import CloudflareBillingBaseOperator
from airflow_provider_cfbilling.operators.snapshots import (
    CloudflareBillingHistoryOperator,
    CloudflareBillingProfileOperator,
    CloudflareSubscriptionsOperator,
)
from airflow_provider_cfbilling.partitions import DaySpool, DestinationTemplate

if TYPE_CHECKING:
    from airflow_provider_cfbilling.hooks.cloudflare import CloudflareHook
    from airflow_provider_cfbilling.landing import Landing
    from airflow_provider_cfbilling.sinks import OutputSpec

log = logging.getLogger(__name__)


class _UsageOperator(CloudflareBillingBaseOperator):
    """Shared by the two usage operators: the window, its requests and day partitions.

    :param period_start: first UTC day of the window (inclusive). Templated.
    :param period_end: the UTC day after the last (exclusive). Templated. Both default to the
        UTC days whose midnight lies in the run's data interval (right in any timezone; a run
        whose interval holds no UTC midnight is skipped), else the UTC day before the logical
        date (or before ``run_after``).
    :param lookback_days: widen the window backwards by this many UTC days, so days Cloudflare
        restates are fetched again; only days whose content changed are rewritten. Needs
        ``{charge_date}`` in ``destination``.
    :param complete_after_days: a partition's manifest says ``complete`` once its day ended at
        least this many days ago (default 7).
    """

    template_fields: Sequence[str] = (*CloudflareBillingBaseOperator.template_fields, "period_start", "period_end")

    def __init__(
        self,
        *,
        period_start: Any = None,
        period_end: Any = None,
        lookback_days: int = 0,
        complete_after_days: int = 7,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.period_start = period_start
        self.period_end = period_end
        self.lookback_days = validation.whole_number(
            lookback_days, "lookback_days", minimum=0, unit="days", fix="Use lookback_days=7 to re-check the last week"
        )
        self.complete_after_days = validation.whole_number(
            complete_after_days, "complete_after_days", minimum=0, unit="days", fix="Use complete_after_days=7"
        )

    def _window(self, context: Any) -> windows.Window:
        window = windows.resolve_window(self.period_start, self.period_end, context)
        return windows.Window(window.start - dt.timedelta(days=self.lookback_days), window.end)

    def _usage_target(
        self, owner: dict[str, str], window: windows.Window
    ) -> tuple[DestinationTemplate, OutputSpec] | None:
        target = self._target(owner, window, allow_per_day=True)
        if self.lookback_days and (target is None or not target[0].per_day):
            raise CloudflareInputError(
                "lookback_days",
                f"{self.lookback_days} re-fetches past days, which needs one object per day to compare and rewrite",
                "Put {charge_date} in destination, e.g. '.../account_id={account_id}/charge_date={charge_date}/"
                "usage.jsonl', or set lookback_days=0",
            )
        return target

    def _summary(self, owner: Mapping[str, str], window: windows.Window, endpoint: str) -> dict[str, Any]:
        start, end = window.as_strings()
        summary = {"account_id": owner.get("account_id"), "period_start": start, "period_end": end}
        if "organization_id" in owner:
            summary["organization_id"] = owner["organization_id"]
        return {**summary, "endpoint": endpoint}

    def _run(
        self,
        hook: CloudflareHook,
        plan: usage.UsagePlan,
        target: tuple[DestinationTemplate, OutputSpec] | None,
        context: Any,
    ) -> Any:
        self.log.info(
            "Fetching %s usage of %s for [%s, %s) from %s in %d request(s)%s",
            "v2" if plan.source == "v2" else "PayGo",
            ", ".join(f"{kind.removesuffix('_id')} {value}" for kind, value in plan.owner.items()),
            plan.window.start,
            plan.window.end,
            plan.endpoint.route,
            len(plan.requests),
            f", metric {plan.metric}" if plan.metric else "",
        )
        landing = self._landing(plan.path, plan.owner, plan.source)
        with hook:
            return self._deliver(plan.records(self.log), target, landing, plan.window, context)

    def _deliver(
        self,
        records: Iterable[dict[str, Any]],
        target: tuple[DestinationTemplate, OutputSpec] | None,
        landing: Landing,
        window: windows.Window,
        context: Any,
    ) -> Any:
        summary = self._summary(landing.owner, window, landing.endpoint)
        if target is None or not target[0].per_day:
            return self._land(records, target, landing, window, summary, context)
        template = target[0]
        with DaySpool(records, usage.charge_day) as spool:
            partitions = landing.write_days(spool, template, window)
        self._written_uris = [part["uri"] for part in partitions if part["status"] != "unchanged"]
        counts = {status: sum(part["status"] == status for part in partitions) for status in _STATUSES}
        written = {
            # The partitions' common pattern, {charge_date} left to fill.
            "uri": template.render(landing.owner, window),
            "format": target[1].file_format,
            "records": sum(part["records"] for part in partitions),
            "bytes": sum(part["bytes"] for part in partitions),
            **summary,
            "partitions": partitions,
        }
        self.log.info(
            "%d records (%d bytes, %s) in %d daily partition(s): %s",
            written["records"],
            written["bytes"],
            written["format"],
            len(partitions),
            ", ".join(f"{count} {status}" for status, count in counts.items()),
        )
        # Asset events only for days whose data is new or changed: downstream DAGs scheduled on
        # the asset run again only when there is something new to read.
        fresh = [
            {**part, **summary, "format": written["format"]} for part in partitions if part["status"] != "unchanged"
        ]
        self._report_outlets(context, fresh, written)
        return written


_STATUSES = ("new", "changed", "unchanged")


class CloudflareUsageV2Operator(_UsageOperator):
    """v2 (FinOps FOCUS 1.3) usage of one account (``GET /accounts/{id}/billable/usage``) or of
    every account of an organization (``GET /organizations/{id}/billable/usage``) for a window.

    The window is split into requests of at most 31 days under either reading of ``to`` and
    merged; every record kept has ``ChargePeriodStart`` inside ``[period_start, period_end)``
    whatever the server's reading of ``to``, and none appears twice.

    :param metric: keep only this billable metric (``x_BillableMetricId``); sent to the server and
        also enforced on the records. Templated.
    :param organization_id: read the usage of every account of this organization instead of one
        account (each record names its account in ``BillingAccountId``); default the connection's
        ``extra.organization_id``. An error together with an explicit ``account_id``; the
        connection's default account is then ignored. Destinations name it ``{organization_id}``.
        Templated.
    """

    template_fields: Sequence[str] = (*_UsageOperator.template_fields, "metric", "organization_id")
    source = "v2"

    def __init__(self, *, metric: str | None = None, organization_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.metric = metric
        self.organization_id = organization_id

    def execute(self, context: Any) -> Any:
        window = self._window(context)
        hook = self.get_hook()
        scope = hook.resolve_usage_scope(self.account_id or None, self.organization_id or None)
        if scope.organization_id:
            target = self._usage_target({"organization_id": scope.organization_id}, window)
            plan = usage.plan_organization(hook, scope.organization_id, window, self.metric or None)
            return self._run(hook, plan, target, context)
        account_id = scope.id
        target = self._usage_target({"account_id": account_id}, window)
        # Every request is checked (connection, dates, metric) before the sink opens anything.
        plan = usage.plan_v2(hook, account_id, window, self.metric or None)
        return self._run(hook, plan, target, context)


class CloudflarePaygoUsageOperator(_UsageOperator):
    """PayGo usage of one account for a window, from any of the PayGo paths.

    Cloudflare has moved this endpoint: ``billable-usage`` (newest, the default),
    ``paygo-usage`` (v1 alpha) and ``billing/usage/paygo`` (beta). On the first two the server
    returns nothing unless the requested range contains the subscription's billing-cycle anchor
    day; the operator reads the anchor from the path's info endpoint and starts each request at
    the latest anchor day on or before its first day, keeping only records inside the window.
    Windows longer than the path's range limit (counted from that earlier start, under either
    reading of ``to``) are split.

    :param paygo_path: which PayGo path; default the connection's ``extra.paygo_path``, else
        ``billable-usage``.
    """

    template_fields: Sequence[str] = (*_UsageOperator.template_fields, "paygo_path")

    def __init__(self, *, paygo_path: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        validation.paygo_path(paygo_path, template_ok=True)
        self.paygo_path = paygo_path

    def execute(self, context: Any) -> Any:
        window = self._window(context)
        hook = self.get_hook()
        account_id = hook.resolve_account_id(self.account_id)
        target = self._usage_target({"account_id": account_id}, window)
        with hook:  # the anchor-day lookup is a request: keep the connection for the fetch
            plan = usage.plan_paygo(hook, account_id, window, self.paygo_path or None)
            return self._run(hook, plan, target, context)


__all__ = [
    "CloudflareBillingHistoryOperator",
    "CloudflareBillingProfileOperator",
    "CloudflarePaygoUsageOperator",
    "CloudflareSubscriptionsOperator",
    "CloudflareUsageV2Operator",
]
