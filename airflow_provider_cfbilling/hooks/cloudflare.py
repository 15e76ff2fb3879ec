"""The Cloudflare hook: one object for auth, base URL, timeouts, retries and the envelope.

This module is the facade: one method per endpoint. The parts live beside it:
:mod:`.connection_form` (the connection form of the Airflow 2.x-3.1 UIs), :mod:`.settings` (what the
connection says), :mod:`.transport` (the retry conversation and the wire), :mod:`.envelope`
(Cloudflare's response envelope and errors), :mod:`.paging` (paginated lists) and
:mod:`.connection_check` (``test_connection``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any, ClassVar

import httpx

from airflow_provider_cfbilling import validation
from airflow_provider_cfbilling.endpoints import (
    BILLING_HISTORY_ROUTE,
    DEFAULT_HISTORY_MAX_PAGES,
    DEFAULT_HISTORY_PER_PAGE,
    ORGANIZATION_USAGE,
    PAYGO_PATHS,
    PROFILE_ROUTE,
    SUBSCRIPTIONS_ROUTE,
    V2_USAGE,
    UsageEndpoint,
    max_request_gap,
    paygo_endpoint,
)
from airflow_provider_cfbilling.exceptions import CloudflareInputError
from airflow_provider_cfbilling.hooks import connection_form
from airflow_provider_cfbilling.hooks.connection_check import ConnectionCheck
from airflow_provider_cfbilling.hooks.envelope import MalformedBodyError
from airflow_provider_cfbilling.hooks.paging import paginate
from airflow_provider_cfbilling.hooks.settings import (
    DEFAULT_BASE_URL,
    ConnectionSettings,
    RetrySettings,
    SettingsMixin,
    parse_retry_after,
)
from airflow_provider_cfbilling.hooks.transport import Transport, _as_list, _Call
from airflow_provider_cfbilling.version_compat import BaseHook

log = logging.getLogger(__name__)

V2_USAGE_ROUTE = V2_USAGE.route


class CloudflareHook(SettingsMixin, ConnectionCheck, Transport, BaseHook):
    """Talks to the Cloudflare billing API with the credentials of a ``cloudflare`` connection.

    :param cloudflare_conn_id: the Airflow connection (type ``cloudflare``).
    :param timeout: per-request timeout in seconds (default: extra ``timeout``, else 60).
    :param max_retries: retries of 408/409/429/5xx and network errors (default: extra, else 8).
    :param retry_after_max: the longest ``Retry-After`` honoured, in seconds (default 360).
    :param backoff_base: first backoff in seconds, doubled per retry (default 1).
    :param backoff_max: the longest backoff in seconds (default 60).
    :param verify: verify TLS certificates (default: extra ``verify``, else true).
    :param transport: an ``httpx`` transport for the sync client (tests use ``httpx.MockTransport``).
    :param async_transport: an ``httpx`` transport for the async client.
    """

    conn_name_attr = "cloudflare_conn_id"
    default_conn_name = "cloudflare_default"
    conn_type = "cloudflare"
    hook_name = "Cloudflare"
    _settings_keys: ClassVar[tuple[str, ...]] = (
        "timeout",
        "max_retries",
        "retry_after_max",
        "backoff_base",
        "backoff_max",
        "verify",
    )

    def __init__(
        self,
        cloudflare_conn_id: str = default_conn_name,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        retry_after_max: float | None = None,
        backoff_base: float | None = None,
        backoff_max: float | None = None,
        verify: bool | None = None,
        transport: httpx.BaseTransport | None = None,
        async_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__()
        self.cloudflare_conn_id = cloudflare_conn_id
        self._overrides: dict[str, Any] = {
            key: value
            for key, value in {
                "timeout": timeout,
                "max_retries": max_retries,
                "retry_after_max": retry_after_max,
                "backoff_base": backoff_base,
                "backoff_max": backoff_max,
                "verify": verify,
            }.items()
            if value is not None
        }
        self._transport = transport
        self._async_transport = async_transport
        self._settings: ConnectionSettings | None = None
        self._client: httpx.Client | None = None

    # The providers manager of Airflow 2.x-3.1 reads these two from the class's own __dict__:
    # they cannot be inherited from a mixin.
    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """Extra fields of the connection form (the Airflow 2.x / 3.0 / 3.1 UIs)."""
        return connection_form.widgets()

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Relabelled and hidden standard fields (the Airflow 2.x / 3.0 / 3.1 UIs)."""
        return connection_form.field_behaviour()

    # ------------------------------------------------------------------ settings

    def get_conn(self) -> httpx.Client:
        """The hook's one ``httpx.Client``, reused for every request (keep-alive)."""
        if self._client is None:
            settings = self.settings
            self._client = httpx.Client(
                base_url=settings.base_url,
                headers=self._headers(settings),
                timeout=httpx.Timeout(settings.timeout, connect=min(settings.timeout, 15.0)),
                verify=settings.verify,
                follow_redirects=False,
                transport=self._transport,
            )
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> CloudflareHook:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------ calls (validation, no I/O)

    def _organization_call(
        self, settings: ConnectionSettings, organization_id: str | None, from_date: Any, to_date: Any
    ) -> _Call:
        start, end = validation.date_range(
            from_date,
            to_date,
            both_or_neither=True,
            max_gap_days=max_request_gap(ORGANIZATION_USAGE),
            limit_days=ORGANIZATION_USAGE.max_range_days,
        )
        organization = validation.organization_id(organization_id or settings.organization_id)
        params: tuple[tuple[str, str], ...] = ()
        if start is not None and end is not None:
            params = (("from", start.isoformat()), ("to", end.isoformat()))
        path = ORGANIZATION_USAGE.route.format(organization_id=organization)
        return _Call(path=path, endpoint=ORGANIZATION_USAGE.route, params=params, streams_records=True)

    def _account_path(self, route: str, account_id: str | None, settings: ConnectionSettings) -> tuple[str, str]:
        account = validation.account_id(account_id) if account_id else validation.account_id(settings.account_id)
        return route.format(account_id=account), route

    def _v2_call(
        self,
        settings: ConnectionSettings,
        account_id: str | None,
        from_date: Any,
        to_date: Any,
        metric: str | None,
    ) -> _Call:
        start, end = validation.date_range(
            from_date,
            to_date,
            both_or_neither=True,
            max_gap_days=max_request_gap(V2_USAGE),
            limit_days=V2_USAGE.max_range_days,
        )
        path, endpoint = self._account_path(V2_USAGE_ROUTE, account_id, settings)
        params: list[tuple[str, str]] = []
        if start is not None and end is not None:
            params += [("from", start.isoformat()), ("to", end.isoformat())]
        metric_id = validation.metric(metric)
        if metric_id is not None:
            if settings.v2_metric_param in ("both", "metric"):
                params.append(("metric", metric_id))
            if settings.v2_metric_param in ("both", "metric_id"):
                params.append(("metric_id", metric_id))
        return _Call(path=path, endpoint=endpoint, params=tuple(params), streams_records=True)

    def _paygo_call(
        self,
        settings: ConnectionSettings,
        account_id: str | None,
        from_date: Any,
        to_date: Any,
        path: str | None,
    ) -> _Call:
        usage = self._paygo_route(settings, path)
        start, end = validation.date_range(
            from_date,
            to_date,
            both_or_neither=False,
            max_gap_days=max_request_gap(usage),
            limit_days=usage.max_range_days,
        )
        account_path, endpoint = self._account_path(usage.route, account_id, settings)
        params: list[tuple[str, str]] = []
        if start is not None:
            params.append(("from", start.isoformat()))
        if end is not None:
            params.append(("to", end.isoformat()))
        return _Call(path=account_path, endpoint=endpoint, params=tuple(params), streams_records=True)

    def _paygo_route(self, settings: ConnectionSettings, path: str | None) -> UsageEndpoint:
        usage = paygo_endpoint(path or settings.paygo_path)
        if usage is None:
            raise CloudflareInputError(
                "paygo_path", f"{path!r} is not a PayGo path", f"Use one of {', '.join(PAYGO_PATHS)}"
            )
        return usage

    def paygo_usage_endpoint(self, path: str | None = None) -> UsageEndpoint:
        """The PayGo endpoint in use (``path`` or the connection's ``extra.paygo_path``)."""
        return self._paygo_route(self.settings, path)

    def paygo_endpoint(self, path: str | None = None) -> str:
        """The route template of the PayGo path in use (``path`` or the connection's choice)."""
        return self._paygo_route(self.settings, path).route

    # ------------------------------------------------------------------ public endpoints (sync)

    def check_v2_usage(
        self,
        account_id: str | None = None,
        from_date: Any = None,
        to_date: Any = None,
        metric: str | None = None,
    ) -> None:
        """Validate a v2 usage request (connection, account, dates, metric) without sending it."""
        self._v2_call(self.settings, account_id, from_date, to_date, metric)

    def check_paygo_usage(
        self,
        account_id: str | None = None,
        from_date: Any = None,
        to_date: Any = None,
        path: str | None = None,
    ) -> None:
        """Validate a PayGo usage request (connection, account, path, dates) without sending it."""
        self._paygo_call(self.settings, account_id, from_date, to_date, path)

    def get_v2_usage(
        self,
        account_id: str | None = None,
        from_date: Any = None,
        to_date: Any = None,
        metric: str | None = None,
    ) -> Iterator[dict[str, Any]]:
        """v2 (FOCUS) usage records of ``GET /accounts/{id}/billable/usage``.

        ``from_date``/``to_date`` are sent as the API's ``from``/``to`` (dates, both or neither,
        at most 30 days apart, so the request covers at most 31 days under either reading of
        ``to``); how the server reads ``to`` is not documented, so callers that
        need an exact window filter on ``ChargePeriodStart`` (the operators do). Records stream
        from the spooled body; the request is made before this method returns.
        """
        return self._records(self._v2_call(self.settings, account_id, from_date, to_date, metric))

    def get_paygo_usage(
        self,
        account_id: str | None = None,
        from_date: Any = None,
        to_date: Any = None,
        path: str | None = None,
    ) -> Iterator[dict[str, Any]]:
        """PayGo usage records from one of the PayGo paths (``billable-usage``, ``paygo-usage``,
        ``billing/usage/paygo``; default: the connection's ``extra.paygo_path``)."""
        return self._records(self._paygo_call(self.settings, account_id, from_date, to_date, path))

    def get_paygo_usage_info(self, account_id: str | None = None, path: str | None = None) -> dict[str, Any]:
        """The ``result`` of a PayGo path's info endpoint (``billable-usage`` and ``paygo-usage``):
        ``{"covered": bool, "subscriptions": [{"id", "start_timestamp",
        "billing_cycle_anchor_timestamp"}, ...]}``."""
        settings = self.settings
        info_route = self._paygo_route(settings, path).info_route
        if info_route is None:
            raise CloudflareInputError(
                "paygo_path",
                f"{path or settings.paygo_path!r} has no info endpoint",
                "Use billable-usage or paygo-usage",
            )
        account_path, endpoint = self._account_path(info_route, account_id, settings)
        result = self._json(_Call(path=account_path, endpoint=endpoint))
        if not isinstance(result, dict):
            raise MalformedBodyError("The usage info is not an object", status=200, endpoint=endpoint)
        return result

    def check_organization_usage(
        self, organization_id: str | None = None, from_date: Any = None, to_date: Any = None
    ) -> None:
        """Validate an organization usage request (organization id, dates) without sending it."""
        self._organization_call(self.settings, organization_id, from_date, to_date)

    def get_organization_usage(
        self, organization_id: str | None = None, from_date: Any = None, to_date: Any = None
    ) -> Iterator[dict[str, Any]]:
        """v2 (FOCUS) usage of every account of an organization
        (``GET /organizations/{id}/billable/usage``; same rules as :meth:`get_v2_usage`, no metric
        filter; each record names its account in ``BillingAccountId``)."""
        return self._records(self._organization_call(self.settings, organization_id, from_date, to_date))

    async def aget_organization_usage(
        self, organization_id: str | None = None, from_date: Any = None, to_date: Any = None
    ) -> Iterator[dict[str, Any]]:
        """Async counterpart of :meth:`get_organization_usage`."""
        settings = await self._asettings()
        return await self._arecords(self._organization_call(settings, organization_id, from_date, to_date))

    def get_subscriptions(self, account_id: str | None = None) -> list[dict[str, Any]]:
        """The account's subscriptions (``GET /accounts/{id}/subscriptions``: plans, prices,
        frequencies, states and current periods; one request, no paging)."""
        account_path, endpoint = self._account_path(SUBSCRIPTIONS_ROUTE, account_id, self.settings)
        return _as_list(self._json(_Call(path=account_path, endpoint=endpoint)), endpoint)

    def iter_billing_history(
        self,
        account_id: str | None = None,
        *,
        per_page: int = DEFAULT_HISTORY_PER_PAGE,
        status: str | None = None,
        max_pages: int = DEFAULT_HISTORY_MAX_PAGES,
    ) -> Iterator[dict[str, Any]]:
        """The account's billing history items (``GET /accounts/{id}/billing/history``), page by page.

        Each page is one request with the hook's retry policy; one page is held at a time. The
        walk stops at the first empty page or at the server's ``total_pages``, whichever comes
        first. A server that answers a page with the same items as the page before (it ignores
        ``page``) or that passes ``max_pages`` without an end raises
        :class:`~airflow_provider_cfbilling.exceptions.CloudflareRequestError` rather than loop.
        The items hold links that open invoices without login (``hosted_invoice_url``): redact
        them before storing (``records.redact_billing_history``). Arguments are checked before
        the first request; requests are made as the iterator is consumed.
        """
        validation.whole_number(per_page, "per_page", minimum=1, fix="Use e.g. per_page=50")
        validation.whole_number(max_pages, "max_pages", minimum=1, fix="Use e.g. max_pages=1000")
        if status is not None and (not isinstance(status, str) or not status.strip()):
            raise CloudflareInputError("status", f"{status!r} is not a history status", "Use e.g. status='paid'")
        account_path, endpoint = self._account_path(BILLING_HISTORY_ROUTE, account_id, self.settings)
        extra = (("status", status.strip()),) if status else ()
        return paginate(self._run, account_path, endpoint, per_page, extra, max_pages)

    def get_billing_profile(self, account_id: str | None = None) -> dict[str, Any]:
        """The account's billing profile (personal and payment data: redact before storing)."""
        account_path, endpoint = self._account_path(PROFILE_ROUTE, account_id, self.settings)
        result = self._json(_Call(path=account_path, endpoint=endpoint))
        if not isinstance(result, dict):
            raise MalformedBodyError("The billing profile is not an object", status=200, endpoint=endpoint)
        return result

    # ------------------------------------------------------------------ public endpoints (async)

    async def aget_v2_usage(
        self,
        account_id: str | None = None,
        from_date: Any = None,
        to_date: Any = None,
        metric: str | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Async counterpart of :meth:`get_v2_usage` (the download is async; parsing streams)."""
        settings = await self._asettings()
        return await self._arecords(self._v2_call(settings, account_id, from_date, to_date, metric))

    async def aget_paygo_usage(
        self,
        account_id: str | None = None,
        from_date: Any = None,
        to_date: Any = None,
        path: str | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Async counterpart of :meth:`get_paygo_usage`."""
        settings = await self._asettings()
        return await self._arecords(self._paygo_call(settings, account_id, from_date, to_date, path))

    # ------------------------------------------------------------------ the retry conversation


__all__ = [
    "DEFAULT_BASE_URL",
    "CloudflareHook",
    "ConnectionSettings",
    "RetrySettings",
    "parse_retry_after",
]
