"""Operators that pull Cloudflare billing data and land it in XCom or object storage.

The data's way: the hook fetches (one request per chunk of the window) -> records are kept only
when ``ChargePeriodStart`` lies inside the window (and, for v2, the metric matches), then put in
the chosen key style -> a sink: XCom (bounded by ``max_xcom_records``) or one atomically written
object whose summary becomes the XCom value.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_cfbilling import records as record_tools
from airflow_provider_cfbilling import windows
from airflow_provider_cfbilling.exceptions import CloudflareAPIError, CloudflareInputError, CloudflareNotFoundError
from airflow_provider_cfbilling.get_provider_info import PAYGO_PATHS
from airflow_provider_cfbilling.validation import V2_MAX_SPAN_DAYS
from airflow_provider_cfbilling.version_compat import BaseOperator, OutletAsset, OutletAssetAlias

if TYPE_CHECKING:
    from airflow_provider_cfbilling.hooks.cloudflare import CloudflareHook
    from airflow_provider_cfbilling.sinks import OutputSpec

log = logging.getLogger(__name__)

DEFAULT_MAX_XCOM_RECORDS = 1000
CHARGE_PERIOD_START = record_tools.CHARGE_PERIOD_START
METRIC_ID = record_tools.METRIC_ID
PAYGO_SOURCES = {"billable-usage": "billable-usage", "paygo-usage": "paygo-usage", "billing/usage/paygo": "paygo"}


class _CloudflareBillingOperator(BaseOperator):
    """What the billing operators share: connection, account, sink, key style and lineage.

    :param cloudflare_conn_id: the ``cloudflare`` connection (default ``cloudflare_default``).
    :param account_id: the account (32 hexadecimal characters); default the connection's
        ``extra.account_id``. Templated.
    :param destination: where the records go. Unset: the records are the XCom return value.
        Set: an object-storage URI (``file://``, ``s3://``, ``gs://``, ``abfs://`` ...) written
        atomically and idempotently; the XCom value is then a summary. Templated.
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
        self._written_uri: str | None = None

    # -- hooks for subclasses --------------------------------------------------------------

    def get_hook(self) -> CloudflareHook:
        from airflow_provider_cfbilling.hooks.cloudflare import CloudflareHook

        return CloudflareHook(self.cloudflare_conn_id)

    def _output_spec(self) -> OutputSpec | None:
        if self.destination in (None, ""):
            return None
        if not isinstance(self.destination, str):
            raise CloudflareInputError(
                "destination",
                f"expected a URI string, got {type(self.destination).__name__}",
                "Pass e.g. s3://bucket/key.jsonl",
            )
        from airflow_provider_cfbilling.sinks import check_filesystem, resolve_output

        try:
            spec = resolve_output(self.destination, self.file_format)
            check_filesystem(spec.uri, self.destination_conn_id or None)
            return spec
        except CloudflareInputError:
            raise
        except ValueError as error:
            raise CloudflareInputError("destination", str(error), "Fix the destination URI or file_format") from None

    def _land(
        self,
        records: Iterable[dict[str, Any]],
        spec: OutputSpec | None,
        *,
        source: str,
        summary: dict[str, Any],
        context: Any,
    ) -> Any:
        """Send the records to XCom or storage; the XCom return value."""
        styled = _styled(records, self.key_style)
        if spec is None:
            kept: list[dict[str, Any]] = []
            for record in styled:
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
        from airflow_provider_cfbilling.sinks import write_records

        result = write_records(
            styled,
            spec,
            columns=record_tools.columns_for(source, self.key_style),
            conn_id=self.destination_conn_id or None,
        )
        self._written_uri = result.uri
        self.log.info(
            "Wrote %d records (%d bytes, %s) to %s", result.records, result.bytes, result.file_format, result.uri
        )
        written = {
            "uri": result.uri,
            "format": result.file_format,
            "records": result.records,
            "bytes": result.bytes,
            **summary,
        }
        self._report_outlets(context, written)
        return written

    # -- lineage -----------------------------------------------------------------------------

    def _report_outlets(self, context: Any, summary: dict[str, Any]) -> None:
        """Asset events for the declared outlets: the written object for aliases, the summary as extra."""
        outlets = list(getattr(self, "outlets", None) or [])
        if not outlets or not context or "outlet_events" not in context:
            return
        events = context["outlet_events"]
        for outlet in outlets:
            if isinstance(outlet, OutletAssetAlias):
                events[outlet].add(OutletAsset(summary["uri"]), extra=summary)
            elif isinstance(outlet, OutletAsset):
                events[outlet].extra.update(summary)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: the Cloudflare endpoint as input and the written object as output."""
        from airflow.providers.common.compat.openlineage.facet import Dataset
        from airflow.providers.openlineage.extractors import OperatorLineage

        outputs = []
        if self._written_uri:
            outputs.append(_openlineage_dataset(Dataset, self._written_uri))
        return OperatorLineage(inputs=[], outputs=outputs)


def _openlineage_dataset(dataset_class: Any, uri: str) -> Any:
    from urllib.parse import urlsplit

    parts = urlsplit(uri)
    if parts.scheme == "file":
        return dataset_class(namespace="file", name=parts.path)
    return dataset_class(namespace=f"{parts.scheme}://{parts.netloc}", name=parts.path.lstrip("/"))


def _styled(records: Iterable[dict[str, Any]], key_style: str) -> Iterator[dict[str, Any]]:
    if key_style == "api":
        yield from records
        return
    for record in records:
        yield record_tools.apply_key_style(record, key_style)


def _in_window(
    records: Iterable[dict[str, Any]], window: windows.Window, endpoint: str, metric: str | None = None
) -> Iterator[dict[str, Any]]:
    """Records whose ``ChargePeriodStart`` lies in the window (and whose metric matches)."""
    start, end = window.start_timestamp, window.end_timestamp
    parse = record_tools.parse_timestamp
    for record in records:
        charge_start = record.get(CHARGE_PERIOD_START)
        if charge_start is None:
            raise CloudflareAPIError(
                f"A usage record from {endpoint} has no {CHARGE_PERIOD_START}, so it cannot be placed in the window; "
                "the API's record format may have changed",
                endpoint=endpoint,
            )
        if not start <= parse(charge_start) < end:
            continue
        if metric is not None and record.get(METRIC_ID) != metric:
            continue
        yield record


class _UsageOperator(_CloudflareBillingOperator):
    """Shared by the two usage operators: the window.

    :param period_start: first UTC day of the window (inclusive). Templated.
    :param period_end: the UTC day after the last (exclusive). Templated. Both default to the
        run's data interval, else the UTC day before the logical date (or before ``run_after``).
    """

    template_fields: Sequence[str] = (*_CloudflareBillingOperator.template_fields, "period_start", "period_end")

    def __init__(self, *, period_start: Any = None, period_end: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.period_start = period_start
        self.period_end = period_end

    def _summary(self, account_id: str, window: windows.Window, endpoint: str) -> dict[str, Any]:
        start, end = window.as_strings()
        return {"account_id": account_id, "period_start": start, "period_end": end, "endpoint": endpoint}


class CloudflareUsageV2Operator(_UsageOperator):
    """v2 (FinOps FOCUS 1.3) usage of one account for a window (``GET /accounts/{id}/billable/usage``).

    Windows longer than the API's 31 days are split into consecutive requests and merged; every
    record kept has ``ChargePeriodStart`` inside ``[period_start, period_end)`` whatever the
    server's reading of ``to``, and none appears twice.

    :param metric: keep only this billable metric (``x_BillableMetricId``); sent to the server and
        also enforced on the records. Templated.
    """

    template_fields: Sequence[str] = (*_UsageOperator.template_fields, "metric")
    source = "v2"

    def __init__(self, *, metric: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.metric = metric

    def execute(self, context: Any) -> Any:
        window = windows.resolve_window(self.period_start, self.period_end, context)
        spec = self._output_spec()
        metric = self.metric or None
        hook = self.get_hook()
        account_id = hook.resolve_account_id(self.account_id)
        endpoint = f"/accounts/{account_id}/billable/usage"
        # Every request is validated (connection, dates, metric) before the sink opens anything.
        chunks = list(window.chunks(V2_MAX_SPAN_DAYS))
        for chunk in chunks:
            hook.check_v2_usage(account_id, chunk.start, chunk.end, metric)
        self.log.info(
            "Fetching v2 usage of account %s for [%s, %s) in %d request(s)%s",
            account_id,
            window.start,
            window.end,
            len(chunks),
            f", metric {metric}" if metric else "",
        )

        def fetch() -> Iterator[dict[str, Any]]:
            with hook:
                for chunk in chunks:
                    fetched = hook.get_v2_usage(account_id, chunk.start, chunk.end, metric)
                    yield from _in_window(fetched, chunk, endpoint, metric)

        return self._land(
            fetch(), spec, source=self.source, summary=self._summary(account_id, window, endpoint), context=context
        )


class CloudflarePaygoUsageOperator(_UsageOperator):
    """PayGo usage of one account for a window, from any of the PayGo paths.

    Cloudflare has moved this endpoint: ``billable-usage`` (newest, the default),
    ``paygo-usage`` (v1 alpha) and ``billing/usage/paygo`` (beta). On the first two the server
    returns nothing unless the requested range contains the subscription's billing-cycle anchor
    day; the operator reads the anchor from the path's info endpoint and starts the request at
    the latest anchor day on or before ``period_start``, keeping only records inside the window.

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
        window = windows.resolve_window(self.period_start, self.period_end, context)
        spec = self._output_spec()
        hook = self.get_hook()
        account_id = hook.resolve_account_id(self.account_id)
        path = (self.paygo_path or hook.settings.paygo_path).strip("/")
        if path not in PAYGO_PATHS:
            raise CloudflareInputError(
                "paygo_path", f"{path!r} is not a PayGo path", f"Use one of {', '.join(PAYGO_PATHS)}"
            )
        route = hook.paygo_endpoint(path)
        endpoint = route.format(account_id=account_id)
        source = PAYGO_SOURCES[path]
        try:
            request_start = self._request_start(hook, account_id, path, window)
            self.log.info(
                "Fetching PayGo usage of account %s for [%s, %s) from %s (request from %s)",
                account_id,
                window.start,
                window.end,
                route,
                request_start,
            )

            def fetch() -> Iterator[dict[str, Any]]:
                with hook:
                    fetched = hook.get_paygo_usage(account_id, request_start, window.end, path)
                    yield from _in_window(fetched, window, endpoint)

            return self._land(
                fetch(), spec, source=source, summary=self._summary(account_id, window, endpoint), context=context
            )
        except CloudflareNotFoundError as error:
            if 7003 not in error.codes:
                raise
            others = ", ".join(repr(other) for other in PAYGO_PATHS if other != path)
            error.summary = (
                f"Cloudflare has no PayGo route {route} for this account (code 7003). The PayGo endpoint has "
                f"moved over time; set paygo_path to one of {others} (or extra.paygo_path on the connection)"
            )
            error.args = (error._render(),)
            raise

    def _request_start(self, hook: CloudflareHook, account_id: str, path: str, window: windows.Window) -> dt.date:
        if path not in windows.ANCHOR_RULE_PATHS:
            return window.start
        return windows.anchored_start(hook.get_paygo_usage_info(account_id, path), window.start)


class CloudflareBillingProfileOperator(_CloudflareBillingOperator):
    """A snapshot of the account's billing profile (``GET /accounts/{id}/billing/profile``).

    Personal and payment fields (``records.PROFILE_REDACTED_FIELDS``: names, emails, addresses,
    telephone, VAT, card and payment details) are replaced by ``"[REDACTED]"`` unless
    ``redact=False``; the profile is never logged either way. Without ``destination`` the XCom
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
        spec = self._output_spec()
        hook = self.get_hook()
        account_id = hook.resolve_account_id(self.account_id)
        endpoint = f"/accounts/{account_id}/billing/profile"
        with hook:
            profile = hook.get_billing_profile(account_id)
        if self.redact:
            profile = record_tools.redact_profile(profile)
        self.log.info("Fetched the billing profile of account %s (redacted: %s)", account_id, self.redact)
        summary = {"account_id": account_id, "period_start": None, "period_end": None, "endpoint": endpoint}
        if spec is None:
            return record_tools.apply_key_style(profile, self.key_style)
        return self._land([profile], spec, source=self.source, summary=summary, context=context)


__all__ = [
    "CloudflareBillingProfileOperator",
    "CloudflarePaygoUsageOperator",
    "CloudflareUsageV2Operator",
]
