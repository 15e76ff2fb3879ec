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
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_cfbilling import records as record_tools
from airflow_provider_cfbilling import usage, windows
from airflow_provider_cfbilling.endpoints import PAYGO_PATHS, V2_USAGE
from airflow_provider_cfbilling.exceptions import CloudflareInputError
from airflow_provider_cfbilling.partitions import DaySpool, DestinationTemplate, parse_destination
from airflow_provider_cfbilling.version_compat import BaseOperator, OutletAsset, OutletAssetAlias

if TYPE_CHECKING:
    from airflow_provider_cfbilling.hooks.cloudflare import CloudflareHook
    from airflow_provider_cfbilling.landing import Landing
    from airflow_provider_cfbilling.sinks import OutputSpec

log = logging.getLogger(__name__)

DEFAULT_MAX_XCOM_RECORDS = 1000


class _CloudflareBillingOperator(BaseOperator):
    """What the billing operators share: connection, account, sink, key style and lineage.

    :param cloudflare_conn_id: the ``cloudflare`` connection (default ``cloudflare_default``).
    :param account_id: the account (32 hexadecimal characters); default the connection's
        ``extra.account_id``. Templated.
    :param destination: where the records go. Unset: the records are the XCom return value.
        Set: an object-storage URI (``file://``, ``s3://``, ``gs://``, ``abfs://`` ...) written
        atomically and idempotently; the XCom value is then a summary. Templated; after Jinja,
        ``{account_id}``, ``{period_start}`` and ``{period_end}`` (exclusive) are filled from the
        window fetched, and ``{charge_date}`` (usage operators) writes one object per UTC day.
    :param destination_conn_id: the Airflow connection of the destination's storage. Templated.
    :param file_format: ``jsonl`` (default), ``csv`` or ``parquet``; default from the suffix.
    :param key_style: ``"api"`` (the API's keys) or ``"snake"`` (the official SDK's attribute names).
    :param max_xcom_records: the most records returned through XCom when ``destination`` is unset.

    Lineage: the written object is reported as hook-level lineage and, when the OpenLineage
    provider is installed, as the output of :meth:`get_openlineage_facets_on_complete`. To
    schedule downstream DAGs on it, give ``outlets``: an ``AssetAlias`` receives an asset event for
    the exact object written (one per partition), an ``Asset`` gets the summary as its event's
    ``extra``.
    """

    template_fields: Sequence[str] = ("account_id", "destination", "destination_conn_id")
    ui_color = "#f6821f"
    source: ClassVar[str] = ""

    def __init__(
        self,
        *,
        cloudflare_conn_id: str = "cloudflare_default",
        account_id: str | None = None,
        destination: str | None = None,
        destination_conn_id: str | None = None,
        file_format: str | None = None,
        key_style: str = "api",
        max_xcom_records: int = DEFAULT_MAX_XCOM_RECORDS,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.cloudflare_conn_id = cloudflare_conn_id
        self.account_id = account_id
        self.destination = destination
        self.destination_conn_id = destination_conn_id
        self.file_format = file_format
        self.key_style = record_tools.validate_key_style(key_style)
        if isinstance(max_xcom_records, bool) or not isinstance(max_xcom_records, int) or max_xcom_records < 0:
            raise CloudflareInputError(
                "max_xcom_records",
                f"{max_xcom_records!r} is not a whole number >= 0",
                "Use e.g. max_xcom_records=1000, or set destination to land any number of records in storage",
            )
        self.max_xcom_records = max_xcom_records
        if file_format is not None:
            from airflow_provider_cfbilling.sinks import FORMATS

            if file_format not in FORMATS:
                raise CloudflareInputError(
                    "file_format", f"{file_format!r} is not supported", f"Use one of {', '.join(FORMATS)}"
                )
        self._written_uris: list[str] = []

    # -- hooks for subclasses --------------------------------------------------------------

    def get_hook(self) -> CloudflareHook:
        from airflow_provider_cfbilling.hooks.cloudflare import CloudflareHook

        return CloudflareHook(self.cloudflare_conn_id)

    def _destination_template(self) -> DestinationTemplate | None:
        if self.destination in (None, ""):
            return None
        if not isinstance(self.destination, str):
            raise CloudflareInputError(
                "destination",
                f"expected a URI string, got {type(self.destination).__name__}",
                "Pass e.g. s3://bucket/key.jsonl",
            )
        return parse_destination(self.destination)

    def _target(
        self, account_id: str, window: windows.Window | None, *, allow_per_day: bool
    ) -> tuple[DestinationTemplate, OutputSpec] | None:
        """The destination, checked before any request: its placeholders and its first object."""
        template = self._destination_template()
        if template is None:
            return None
        if template.per_day and not allow_per_day:
            raise CloudflareInputError(
                "destination",
                "{charge_date} names a day, but this operator writes a snapshot that has none",
                "Use Jinja for the date of the run instead, e.g. '.../snapshot_date={{ ds }}/profile.json'",
            )
        if window is None:
            window = windows.Window(dt.date.min, dt.date.min + windows.ONE_DAY)
            if any("{" + name + "}" in template.text for name in ("period_start", "period_end")):
                raise CloudflareInputError(
                    "destination",
                    "{period_start} and {period_end} name a usage window, but a snapshot has none",
                    "Use Jinja for the date of the run instead, e.g. '.../snapshot_date={{ ds }}/profile.json'",
                )
        from airflow_provider_cfbilling.landing import output_spec

        first = template.render(account_id, window, window.start)
        return template, output_spec(first, self.file_format, self.destination_conn_id or None)

    def _landing(self, endpoint: str, account_id: str, source: str) -> Landing:
        from airflow_provider_cfbilling.landing import Landing

        return Landing(
            endpoint=endpoint,
            account_id=account_id,
            source=source,
            key_style=self.key_style,
            file_format=self.file_format,
            conn_id=self.destination_conn_id or None,
            focus_version=V2_USAGE.focus_version if source == V2_USAGE.source else None,
            complete_after_days=getattr(self, "complete_after_days", 7),
        )

    def _land(
        self,
        records: Iterable[dict[str, Any]],
        target: tuple[DestinationTemplate, OutputSpec] | None,
        landing: Landing,
        window: windows.Window | None,
        summary: dict[str, Any],
        context: Any,
    ) -> Any:
        """Send the records to XCom or to one object; the XCom return value."""
        if target is None:
            from airflow_provider_cfbilling.landing import styled

            kept: list[dict[str, Any]] = []
            for record in styled(records, self.key_style):
                if len(kept) >= self.max_xcom_records:
                    raise CloudflareInputError(
                        "max_xcom_records",
                        f"the window holds more than {self.max_xcom_records} records, too many for XCom",
                        "Set destination (e.g. 's3://bucket/cloudflare/usage.jsonl') to land them in object "
                        "storage, or raise max_xcom_records",
                    )
                kept.append(record)
            self.log.info("Returning %d records through XCom", len(kept))
            return kept
        written = {**landing.write_object(records, target[1], window), **summary}
        self._written_uris = [written["uri"]]
        self.log.info(
            "Wrote %d records (%d bytes, %s) to %s",
            written["records"],
            written["bytes"],
            written["format"],
            written["uri"],
        )
        self._report_outlets(context, [written])
        return written

    # -- lineage -----------------------------------------------------------------------------

    def _report_outlets(
        self, context: Any, objects: list[dict[str, Any]], summary: dict[str, Any] | None = None
    ) -> None:
        """Asset events for the declared outlets: one per written object for aliases (its own
        summary as extra), the whole summary as an ``Asset``'s extra."""
        outlets = list(getattr(self, "outlets", None) or [])
        if not outlets or not context or "outlet_events" not in context:
            return
        events = context["outlet_events"]
        for outlet in outlets:
            if isinstance(outlet, OutletAssetAlias):
                for written in objects:
                    events[outlet].add(OutletAsset(written["uri"]), extra=written)
            elif isinstance(outlet, OutletAsset):
                events[outlet].extra.update(summary or objects[0])

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: the Cloudflare endpoint as input and the written object as output."""
        from airflow.providers.common.compat.openlineage.facet import Dataset
        from airflow.providers.openlineage.extractors import OperatorLineage

        outputs = [_openlineage_dataset(Dataset, uri) for uri in self._written_uris]
        return OperatorLineage(inputs=[], outputs=outputs)


def _openlineage_dataset(dataset_class: Any, uri: str) -> Any:
    from urllib.parse import urlsplit

    parts = urlsplit(uri)
    if parts.scheme == "file":
        return dataset_class(namespace="file", name=parts.path)
    return dataset_class(namespace=f"{parts.scheme}://{parts.netloc}", name=parts.path.lstrip("/"))


class _UsageOperator(_CloudflareBillingOperator):
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

    template_fields: Sequence[str] = (*_CloudflareBillingOperator.template_fields, "period_start", "period_end")

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
        self.lookback_days = _whole_days(lookback_days, "lookback_days", "lookback_days=7 to re-check the last week")
        self.complete_after_days = _whole_days(complete_after_days, "complete_after_days", "complete_after_days=7")

    def _window(self, context: Any) -> windows.Window:
        window = windows.resolve_window(self.period_start, self.period_end, context)
        return windows.Window(window.start - dt.timedelta(days=self.lookback_days), window.end)

    def _usage_target(self, account_id: str, window: windows.Window) -> tuple[DestinationTemplate, OutputSpec] | None:
        target = self._target(account_id, window, allow_per_day=True)
        if self.lookback_days and (target is None or not target[0].per_day):
            raise CloudflareInputError(
                "lookback_days",
                f"{self.lookback_days} re-fetches past days, which needs one object per day to compare and rewrite",
                "Put {charge_date} in destination, e.g. '.../account_id={account_id}/charge_date={charge_date}/"
                "usage.jsonl', or set lookback_days=0",
            )
        return target

    def _summary(self, account_id: str, window: windows.Window, endpoint: str) -> dict[str, Any]:
        start, end = window.as_strings()
        return {"account_id": account_id, "period_start": start, "period_end": end, "endpoint": endpoint}

    def _run(
        self,
        hook: CloudflareHook,
        plan: usage.UsagePlan,
        target: tuple[DestinationTemplate, OutputSpec] | None,
        context: Any,
    ) -> Any:
        self.log.info(
            "Fetching %s usage of account %s for [%s, %s) from %s in %d request(s)%s",
            "v2" if plan.source == "v2" else "PayGo",
            plan.account_id,
            plan.window.start,
            plan.window.end,
            plan.endpoint.route,
            len(plan.requests),
            f", metric {plan.metric}" if plan.metric else "",
        )
        landing = self._landing(plan.path, plan.account_id, plan.source)
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
        summary = self._summary(landing.account_id, window, landing.endpoint)
        if target is None or not target[0].per_day:
            return self._land(records, target, landing, window, summary, context)
        template = target[0]
        with DaySpool(records, usage.charge_day) as spool:
            partitions = landing.write_days(spool, template, window)
        self._written_uris = [part["uri"] for part in partitions if part["status"] != "unchanged"]
        counts = {status: sum(part["status"] == status for part in partitions) for status in _STATUSES}
        written = {
            # The partitions' common pattern, {charge_date} left to fill.
            "uri": template.render(landing.account_id, window),
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


def _whole_days(value: Any, parameter: str, example: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise CloudflareInputError(parameter, f"{value!r} is not a whole number of days >= 0", f"Use {example}")
    return value


class CloudflareUsageV2Operator(_UsageOperator):
    """v2 (FinOps FOCUS 1.3) usage of one account for a window (``GET /accounts/{id}/billable/usage``).

    The window is split into requests of at most 31 days under either reading of ``to`` and
    merged; every record kept has ``ChargePeriodStart`` inside ``[period_start, period_end)``
    whatever the server's reading of ``to``, and none appears twice.

    :param metric: keep only this billable metric (``x_BillableMetricId``); sent to the server and
        also enforced on the records. Templated.
    """

    template_fields: Sequence[str] = (*_UsageOperator.template_fields, "metric")
    source = "v2"

    def __init__(self, *, metric: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.metric = metric

    def execute(self, context: Any) -> Any:
        window = self._window(context)
        hook = self.get_hook()
        account_id = hook.resolve_account_id(self.account_id)
        target = self._usage_target(account_id, window)
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
        if paygo_path is not None and "{{" not in paygo_path and paygo_path.strip("/") not in PAYGO_PATHS:
            raise CloudflareInputError(
                "paygo_path", f"{paygo_path!r} is not a PayGo path", f"Use one of {', '.join(PAYGO_PATHS)}"
            )
        self.paygo_path = paygo_path

    def execute(self, context: Any) -> Any:
        window = self._window(context)
        hook = self.get_hook()
        account_id = hook.resolve_account_id(self.account_id)
        target = self._usage_target(account_id, window)
        with hook:  # the anchor-day lookup is a request: keep the connection for the fetch
            plan = usage.plan_paygo(hook, account_id, window, self.paygo_path or None)
            return self._run(hook, plan, target, context)


class CloudflareBillingProfileOperator(_CloudflareBillingOperator):
    """A snapshot of the account's billing profile (``GET /accounts/{id}/billing/profile``).

    Every non-null field outside the allow-list ``records.PROFILE_KEPT_FIELDS`` (fields known
    not to be personal or payment data) is replaced by ``"[REDACTED]"``, nested values and
    fields Cloudflare adds later included, unless ``redact=False``; the profile is never logged
    either way. Without ``destination`` the XCom
    value is the profile itself.

    :param redact: redact personal and payment fields (default True).
    """

    source = "profile"

    def __init__(self, *, redact: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not isinstance(redact, bool):
            raise CloudflareInputError("redact", f"{redact!r} is not a boolean", "Use redact=True or redact=False")
        self.redact = redact

    def execute(self, context: Any) -> Any:
        hook = self.get_hook()
        account_id = hook.resolve_account_id(self.account_id)
        target = self._target(account_id, None, allow_per_day=False)
        endpoint = f"/accounts/{account_id}/billing/profile"
        with hook:
            profile = hook.get_billing_profile(account_id)
        if self.redact:
            profile = record_tools.redact_profile(profile)
        self.log.info("Fetched the billing profile of account %s (redacted: %s)", account_id, self.redact)
        summary = {"account_id": account_id, "period_start": None, "period_end": None, "endpoint": endpoint}
        if target is None:
            return record_tools.apply_key_style(profile, self.key_style)
        return self._land([profile], target, self._landing(endpoint, account_id, self.source), None, summary, context)


__all__ = [
    "CloudflareBillingProfileOperator",
    "CloudflarePaygoUsageOperator",
    "CloudflareUsageV2Operator",
]
