"""Snapshot operators: what the account's billing looks like now (profile, subscriptions,
billing history), to XCom or one object in storage. Exported by :mod:`.billing`."""

from __future__ import annotations

from typing import Any

from airflow_provider_cfbilling import records as record_tools
from airflow_provider_cfbilling import validation
from airflow_provider_cfbilling.endpoints import (
    BILLING_HISTORY_ROUTE,
    DEFAULT_HISTORY_MAX_PAGES,
    DEFAULT_HISTORY_PER_PAGE,
    PROFILE_ROUTE,
    SUBSCRIPTIONS_ROUTE,
)
from airflow_provider_cfbilling.operators.base import CloudflareBillingBaseOperator


class CloudflareBillingProfileOperator(CloudflareBillingBaseOperator):
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
        self.redact = validation.flag(redact, "redact")

    def execute(self, context: Any) -> Any:
        hook = self.get_hook()
        account_id = hook.resolve_account_id(self.account_id)
        owner = {"account_id": account_id}
        target = self._target(owner, None, allow_per_day=False)
        endpoint = PROFILE_ROUTE.format(account_id=account_id)
        with hook:
            profile = hook.get_billing_profile(account_id)
        if self.redact:
            profile = record_tools.redact_profile(profile)
        self.log.info("Fetched the billing profile of account %s (redacted: %s)", account_id, self.redact)
        summary = {"account_id": account_id, "period_start": None, "period_end": None, "endpoint": endpoint}
        if target is None:
            return record_tools.apply_key_style(profile, self.key_style)
        return self._land([profile], target, self._landing(endpoint, owner, self.source), None, summary, context)


class CloudflareSubscriptionsOperator(CloudflareBillingBaseOperator):
    """A snapshot of the account's subscriptions (``GET /accounts/{id}/subscriptions``): plan,
    price, currency, frequency, state and current period of each fixed-fee plan, what usage does
    not cover. Without ``destination`` the XCom value is the list of subscriptions (bounded by
    ``max_xcom_records``); with it, one object and its manifest, and the summary.
    """

    source = "subscriptions"

    def execute(self, context: Any) -> Any:
        hook = self.get_hook()
        account_id = hook.resolve_account_id(self.account_id)
        owner = {"account_id": account_id}
        target = self._target(owner, None, allow_per_day=False)
        endpoint = SUBSCRIPTIONS_ROUTE.format(account_id=account_id)
        with hook:
            subscriptions = hook.get_subscriptions(account_id)
        self.log.info("Fetched %d subscription(s) of account %s", len(subscriptions), account_id)
        summary = {"account_id": account_id, "period_start": None, "period_end": None, "endpoint": endpoint}
        return self._land(subscriptions, target, self._landing(endpoint, owner, self.source), None, summary, context)


class CloudflareBillingHistoryOperator(CloudflareBillingBaseOperator):
    """The account's billing history (``GET /accounts/{id}/billing/history``): what was charged.

    The endpoint is paginated: pages are fetched one at a time (each with the hook's retry
    policy) and streamed to the sink, so memory stays flat; if any page fails, nothing is written
    (the object is replaced atomically or not at all) and nothing is returned. The walk ends at an
    empty page or at the server's page count, and refuses a server that repeats a page or passes
    ``max_pages`` (see :meth:`CloudflareHook.iter_billing_history
    <airflow_provider_cfbilling.hooks.cloudflare.CloudflareHook.iter_billing_history>`).

    Links that open an invoice without a login (``hosted_invoice_url``, and any field whose name
    holds ``url``, ``link``, ``token`` or ``secret``) are bearer credentials: they are replaced by
    ``"[REDACTED]"`` unless ``redact=False``.

    :param status: only items with this status (sent to the server). Templated.
    :param per_page: items per page (default 50).
    :param max_pages: the most pages read before giving up with an error (default 1000).
    :param redact: redact invoice links (default True).
    """

    template_fields = (*CloudflareBillingBaseOperator.template_fields, "status")
    source = "billing_history"

    def __init__(
        self,
        *,
        status: str | None = None,
        per_page: int = DEFAULT_HISTORY_PER_PAGE,
        max_pages: int = DEFAULT_HISTORY_MAX_PAGES,
        redact: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.status = status
        self.per_page = validation.whole_number(per_page, "per_page", minimum=1, fix="Use e.g. per_page=50")
        self.max_pages = validation.whole_number(max_pages, "max_pages", minimum=1, fix="Use e.g. max_pages=1000")
        self.redact = validation.flag(redact, "redact")

    def execute(self, context: Any) -> Any:
        hook = self.get_hook()
        account_id = hook.resolve_account_id(self.account_id)
        owner = {"account_id": account_id}
        target = self._target(owner, None, allow_per_day=False)
        endpoint = BILLING_HISTORY_ROUTE.format(account_id=account_id)
        items = hook.iter_billing_history(
            account_id, per_page=self.per_page, status=self.status or None, max_pages=self.max_pages
        )
        if self.redact:
            items = map(record_tools.redact_billing_history, items)
        self.log.info(
            "Fetching the billing history of account %s (invoice links redacted: %s)", account_id, self.redact
        )
        summary = {"account_id": account_id, "period_start": None, "period_end": None, "endpoint": endpoint}
        with hook:
            return self._land(items, target, self._landing(endpoint, owner, self.source), None, summary, context)
