"""Fetching a usage window: plan its requests, check them, stream the window's records.

Shared by the usage operators and the SQL transfer. A plan is made (and every request checked)
before anything is fetched or written; its records are then streamed request by request, each
request keeping only the records of its own days, so nothing is doubled whatever the server's
reading of ``to``.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_cfbilling import records as record_tools
from airflow_provider_cfbilling import windows
from airflow_provider_cfbilling.endpoints import ORGANIZATION_USAGE, PAYGO_PATHS, V2_USAGE, UsageEndpoint
from airflow_provider_cfbilling.exceptions import CloudflareNotFoundError, CloudflareRequestError

if TYPE_CHECKING:
    from airflow_provider_cfbilling.hooks.cloudflare import CloudflareHook

SOURCES = ("v2", "paygo")  # what a task may ask for: v2 usage, or PayGo usage from its path


@dataclass(frozen=True)
class UsagePlan:
    """The requests that fetch one account's window from one endpoint.

    :param endpoint: the route with the account filled in (for summaries and manifests).
    :param source: the record source (``records.SCHEMAS`` key).
    """

    endpoint: UsageEndpoint
    account_id: str  # "" for an organization's usage
    window: windows.Window
    requests: list[windows.UsageRequest]
    get: Callable[[dt.date, dt.date], Iterator[dict[str, Any]]]
    metric: str | None = None
    organization_id: str | None = None

    @property
    def owner(self) -> dict[str, str]:
        """Whose usage: ``{"account_id": ...}`` or ``{"organization_id": ...}``."""
        if self.organization_id:
            return {"organization_id": self.organization_id}
        return {"account_id": self.account_id}

    @property
    def path(self) -> str:
        return self.endpoint.route.format(account_id=self.account_id, organization_id=self.organization_id)

    @property
    def source(self) -> str:
        return self.endpoint.source

    def records(self, log: logging.Logger | Any) -> Iterator[dict[str, Any]]:
        """The window's records, request by request, with a progress line per request."""
        started = time.monotonic()
        kept = 0
        for number, request in enumerate(self.requests, 1):
            log.info(
                "Request %d of %d: %s from=%s to=%s for [%s, %s) (%d records so far, %.1f s)",
                number,
                len(self.requests),
                self.path,
                request.request_start,
                request.request_end,
                request.days.start,
                request.days.end,
                kept,
                time.monotonic() - started,
            )
            fetched = self.get(request.request_start, request.request_end)
            for record in in_window(fetched, request.days, self.path, self.metric):
                kept += 1
                yield record
        log.info("Fetched %d records in %d request(s) in %.1f s", kept, len(self.requests), time.monotonic() - started)


def plan_v2(hook: CloudflareHook, account_id: str, window: windows.Window, metric: str | None) -> UsagePlan:
    """v2 usage: requests of at most 31 days under either reading of ``to``, each checked."""
    requests = windows.plan_requests(window, V2_USAGE)
    for request in requests:
        hook.check_v2_usage(account_id, request.request_start, request.request_end, metric)

    def get(start: dt.date, end: dt.date) -> Iterator[dict[str, Any]]:
        return hook.get_v2_usage(account_id, start, end, metric)

    return UsagePlan(V2_USAGE, account_id, window, requests, get, metric)


def plan_organization(
    hook: CloudflareHook, organization_id: str, window: windows.Window, metric: str | None = None
) -> UsagePlan:
    """v2 usage of every account of an organization: the same request rules as :func:`plan_v2`.
    The endpoint has no metric filter: ``metric`` is applied to the records only."""
    requests = windows.plan_requests(window, ORGANIZATION_USAGE)
    for request in requests:
        hook.check_organization_usage(organization_id, request.request_start, request.request_end)

    def get(start: dt.date, end: dt.date) -> Iterator[dict[str, Any]]:
        return hook.get_organization_usage(organization_id, start, end)

    return UsagePlan(ORGANIZATION_USAGE, "", window, requests, get, metric, organization_id)


def plan_paygo(hook: CloudflareHook, account_id: str, window: windows.Window, path: str | None) -> UsagePlan:
    """PayGo usage from ``path`` (default the connection's): where the anchor-day rule applies,
    each request starts at the latest anchor day on or before its first day (one request to the
    path's info endpoint), and the range limit is counted from there."""
    usage = hook.paygo_usage_endpoint(path)
    with paygo_route_hint(usage):
        if usage.anchor_rule:
            info = hook.get_paygo_usage_info(account_id, usage.name)
            requests = windows.plan_requests(window, usage, lambda day: windows.anchored_start(info, day))
        else:
            requests = windows.plan_requests(window, usage)
    for request in requests:
        hook.check_paygo_usage(account_id, request.request_start, request.request_end, usage.name)

    def get(start: dt.date, end: dt.date) -> Iterator[dict[str, Any]]:
        with paygo_route_hint(usage):
            return hook.get_paygo_usage(account_id, start, end, usage.name)

    return UsagePlan(usage, account_id, window, requests, get)


class paygo_route_hint:
    """Turn Cloudflare's "no route" (7003) on a PayGo path into an error that names the others."""

    def __init__(self, usage: UsageEndpoint) -> None:
        self.usage = usage

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, error: BaseException | None, traceback: Any) -> None:
        if isinstance(error, CloudflareNotFoundError) and 7003 in error.codes and "PayGo endpoint" not in str(error):
            others = ", ".join(repr(other) for other in PAYGO_PATHS if other != self.usage.name)
            raise CloudflareNotFoundError(
                f"Cloudflare has no PayGo route {self.usage.route} for this account (code 7003). The PayGo endpoint "
                f"has moved over time; set paygo_path to one of {others} (or extra.paygo_path on the connection)",
                status=error.status,
                codes=error.codes,
                messages=error.messages,
                endpoint=error.endpoint,
            ) from error


def in_window(
    records: Iterable[dict[str, Any]], window: windows.Window, endpoint: str, metric: str | None = None
) -> Iterator[dict[str, Any]]:
    """Records whose ``ChargePeriodStart`` lies in the window (and whose metric matches)."""
    start, end = window.start_timestamp, window.end_timestamp
    parse = record_tools.parse_timestamp
    charge_key, metric_key = record_tools.CHARGE_PERIOD_START, record_tools.METRIC_ID
    # A window repeats the same few ChargePeriodStart strings (one a day): each is parsed and
    # compared once. Bounded, so ever-new strings (hourly records, say) cannot grow it without limit.
    verdicts: dict[Any, bool] = {}
    for record in records:
        charge_start = record.get(charge_key)
        try:
            inside = verdicts[charge_start]
        except (KeyError, TypeError):
            if charge_start is None:
                raise CloudflareRequestError(  # a changed record format: retrying cannot help
                    f"A usage record from {endpoint} has no {charge_key}, so it cannot be placed "
                    "in the window; the API's record format may have changed",
                    endpoint=endpoint,
                ) from None
            inside = start <= parse(charge_start) < end
            if type(charge_start) is str and len(verdicts) < 65_536:
                verdicts[charge_start] = inside
        if not inside:
            continue
        if metric is not None and record.get(metric_key) != metric:
            continue
        yield record


def charge_day(record: dict[str, Any]) -> dt.date:
    """The UTC day a usage record belongs to."""
    return record_tools.parse_timestamp(record[record_tools.CHARGE_PERIOD_START]).date()


__all__ = ["SOURCES", "UsagePlan", "charge_day", "in_window", "plan_organization", "plan_paygo", "plan_v2"]
