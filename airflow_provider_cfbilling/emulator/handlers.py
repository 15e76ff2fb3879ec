"""What each emulated Cloudflare route answers, once ``api.py`` has routed and authenticated a request.

One function per route: usage (v2, organization v2, the three PayGo paths), PayGo info, billing profile,
subscriptions, billing history, token verification and the account. Usage bodies are streamed from
``shapes.py`` (and shuffled per response with ``shuffle_records``); the days a usage route serves are
those its query asks for (``params.py``) that are available on the emulator clock.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from airflow_provider_cfbilling.emulator import shapes
from airflow_provider_cfbilling.emulator.billing import billing_history, subscriptions
from airflow_provider_cfbilling.emulator.credentials import ApiToken
from airflow_provider_cfbilling.emulator.days import timestamp
from airflow_provider_cfbilling.emulator.params import (
    HISTORY_DEFAULT_PER_PAGE,
    HISTORY_MAX_PER_PAGE,
    MAX_METRIC_IDS,
    MAX_ORGANIZATION_RANGE_DAYS,
    MAX_V2_RANGE_DAYS,
    PAYGO_LIMITS,
    bad_params,
    check_range_limit,
    date_param,
    day_range,
    int_param,
    v2_days,
)
from airflow_provider_cfbilling.emulator.responses import Request, Response, envelope, records_body

if TYPE_CHECKING:
    from airflow_provider_cfbilling.emulator.state import EmulatorState


def _available(emu: EmulatorState, days: Iterable[date], now: datetime) -> list[date]:
    return [day for day in days if emu.is_available(day, now)]


def _shuffled(records: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    """``records`` in an order that depends only on ``key`` and always differs from theirs (if it can)."""
    order = list(range(len(records)))
    random.Random(key).shuffle(order)
    if order == sorted(order):
        order = order[1:] + order[:1]
    return [records[index] for index in order]


def _records_response(emu: EmulatorState, records: Callable[[], Iterator[dict[str, Any]]]) -> Response:
    """A 200 whose body lists ``records()`` (called again to regenerate the same bytes), shuffled per
    response with ``shuffle_records``."""
    shuffle_key = emu.traffic.next_shuffle_key(emu.seed) if emu.shuffle_records else None

    def body() -> Iterator[bytes]:
        produced = records()
        if shuffle_key is not None:
            # A permutation needs every record at hand: shuffled responses are not streamed lazily.
            produced = iter(_shuffled(list(produced), shuffle_key))
        return records_body(produced)

    return Response(200, body)


def _usage_response(
    emu: EmulatorState, account_id: str, days: list[date], source: str, metric_ids: frozenset[str] | None
) -> Response:
    data = emu.account_data(account_id)
    # Fixed now, so the body regenerates the same bytes even if the emulator changes in between.
    restated = emu.restated_days(account_id)
    return _records_response(emu, lambda: shapes.records(data, days, source, metric_ids, restated))


def handle_v2(emu: EmulatorState, request: Request, account_id: str, now: datetime) -> Response:
    query = request.query
    days = v2_days(query, now, MAX_V2_RANGE_DAYS, emu.to_inclusive)
    metric_ids: frozenset[str] | None = None
    if not emu.ignore_metric_filter:
        wanted = [value.strip() for value in query.get("metric", [])[:1] if value.strip()]
        ids = [value.strip() for value in query.get("metric_id", []) if value.strip()]
        if len(ids) > MAX_METRIC_IDS:
            raise bad_params(f"at most {MAX_METRIC_IDS} 'metric_id' values are allowed")
        if any(len(value) > 128 for value in [*wanted, *ids]):
            raise bad_params("a metric id is at most 128 characters")
        if wanted or ids:
            metric_ids = frozenset([*wanted, *ids])
    return _usage_response(emu, account_id, _available(emu, days, now), "v2", metric_ids)


def handle_organization_v2(emu: EmulatorState, request: Request, organization_id: str, now: datetime) -> Response:
    """Every account's v2 records, by day and then by account in the organization's order: for each day
    exactly what the account route serves for it. No metric filter (the SDK has none); an unknown
    organization, or one without accounts, is an empty list."""
    days = _available(emu, v2_days(request.query, now, MAX_ORGANIZATION_RANGE_DAYS, emu.to_inclusive), now)
    # Fixed now, so the body regenerates the same bytes even if the emulator changes in between.
    accounts = [
        (emu.account_data(account_id), emu.restated_days(account_id))
        for account_id in emu.organization_accounts(organization_id)
    ]

    def records() -> Iterator[dict[str, Any]]:
        for day in days:
            for data, restated in accounts:
                yield from shapes.records(data, (day,), "v2", None, restated)

    return _records_response(emu, records)


def handle_history(emu: EmulatorState, request: Request, account_id: str, now: datetime) -> Response:
    """One page of the billing history (V4PagePaginationArray): ``[]`` past the last page, unless the
    ``history_repeat_pages`` switch makes every page the first one."""
    query = request.query
    page = int_param(query, "page", 1)
    per_page = int_param(query, "per_page", HISTORY_DEFAULT_PER_PAGE, HISTORY_MAX_PER_PAGE)
    status = (query.get("status") or [""])[0].strip() or None
    items = billing_history(emu.account_data(account_id), now, emu.history_items, status)
    first = 0 if emu.history_repeat_pages else (page - 1) * per_page
    chunk = items[first : first + per_page] if first < len(items) else []
    info: dict[str, Any] = {"page": page, "per_page": per_page, "count": len(chunk)}
    if not emu.history_hide_page_count:
        info["total_count"] = len(items)
        info["total_pages"] = -(-len(items) // per_page)
    return Response(200, envelope(chunk, result_info=info))


def handle_subscriptions(emu: EmulatorState, account_id: str, now: datetime) -> Response:
    return Response(200, envelope(subscriptions(emu.account_data(account_id), now)))


def handle_paygo(emu: EmulatorState, request: Request, account_id: str, route: str, now: datetime) -> Response:
    data = emu.account_data(account_id)
    start = date_param(request.query, "from")
    end = date_param(request.query, "to")
    today = now.date()
    inclusive = emu.to_inclusive
    if start is None and end is None:
        start = data.billing_period(today)[0]
        end, inclusive = today, True
    elif end is None:
        end, inclusive = today, True
    elif start is None:
        start = data.billing_period(end)[0]
    assert start is not None and end is not None
    if start > end:
        raise bad_params("'from' must not be after 'to'")
    check_range_limit(start, end, inclusive, PAYGO_LIMITS[route])
    days = day_range(start, end, inclusive)
    if route in ("paygo-usage", "billable-usage") and not any(day.day == data.anchor_day for day in days):
        # The documented trap: a range without the billing-cycle anchor day returns no usage at all.
        days = []
    return _usage_response(emu, account_id, _available(emu, days, now), route, None)


def handle_info(emu: EmulatorState, account_id: str) -> Response:
    data = emu.account_data(account_id)
    return Response(200, envelope({"covered": True, "subscriptions": [data.subscription_info()]}))


def handle_profile(emu: EmulatorState, account_id: str, now: datetime) -> Response:
    data = emu.account_data(account_id)
    next_bill = data.billing_period(now.date())[1]
    profile = {
        "id": data.digest("profile").hex(),
        "account_type": "self_serve",
        "address": "101 Emulator Way",
        "address2": "Suite 4",
        "balance": "0.00",
        "card_expiry_month": 12,
        "card_expiry_year": 2099,
        "card_number": "4242424242424242",
        "city": "Anytown",
        "company": data.name,
        "country": "US",
        "created_on": timestamp(data.subscription_start),
        "device_data": "emulated-device-data",
        "edited_on": timestamp(data.subscription_start),
        "enterprise_billing_email": "billing@example.com",
        "enterprise_primary_email": "owner@example.com",
        "first_name": "Ada",
        "is_partner": False,
        "last_name": "Example",
        "next_bill_date": timestamp(next_bill),
        "payment_address": "101 Emulator Way",
        "payment_address2": "Suite 4",
        "payment_city": "Anytown",
        "payment_country": "US",
        "payment_email": "billing@example.com",
        "payment_first_name": "Ada",
        "payment_gateway": "emulated-gateway",
        "payment_last_name": "Example",
        "payment_nonce": "emulated-nonce-0000",
        "payment_state": "CA",
        "payment_zipcode": "94107",
        "primary_email": "owner@example.com",
        "state": "CA",
        "tax_id_type": "vat",
        "telephone": "+1 555 0100",
        "use_legacy": False,
        "validation_code": "1111",
        "vat": "GB123456789",
        "zipcode": "94107",
    }
    return Response(200, envelope(profile))


def handle_verify(token: ApiToken | None) -> Response:
    assert token is not None
    result: dict[str, Any] = {"id": token.public_id, "status": token.status}
    if token.expires_on:
        result["expires_on"] = token.expires_on
    message = {
        "active": "This API Token is valid and active",
        "disabled": "This API Token is disabled",
        "expired": "This API Token is expired",
    }[token.status]
    return Response(200, envelope(result, [{"code": 10000, "message": message, "type": None}]))


def handle_account(emu: EmulatorState, account_id: str) -> Response:
    data = emu.account_data(account_id)
    account = {
        "id": account_id,
        "name": data.name,
        "type": "standard",
        "settings": {"enforce_twofactor": False, "use_account_custom_ns_by_default": False},
        "created_on": timestamp(data.subscription_start),
    }
    return Response(200, envelope(account))
