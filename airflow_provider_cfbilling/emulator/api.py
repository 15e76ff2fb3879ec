"""What the emulated Cloudflare endpoints answer: routing, auth, parameter rules and response bodies.

This module knows nothing about sockets. :func:`route_request` names the route of a path, and
:func:`handle` turns a parsed request into a :class:`Response` whose body is produced lazily (a body
factory can be called again to regenerate the same bytes, which the truncation fault relies on).
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from airflow_provider_cfbilling.emulator.billing import billing_history, subscriptions
from airflow_provider_cfbilling.emulator.credentials import (
    ACCOUNT_ID_PATTERN,
    EMAIL_PATTERN,
    GLOBAL_KEY_PATTERN,
    TOKEN_PATTERN,
    ApiToken,
)
from airflow_provider_cfbilling.emulator.data import timestamp
from airflow_provider_cfbilling.emulator.organizations import ORGANIZATION_ID_PATTERN
from airflow_provider_cfbilling.endpoints import ORGANIZATION_USAGE, PAYGO_ENDPOINTS, V2_USAGE

if TYPE_CHECKING:
    from airflow_provider_cfbilling.emulator.core import Emulator

API_PREFIX = "/client/v4"
MAX_V2_RANGE_DAYS = V2_USAGE.max_range_days
# The organization route has the account v2 route's rules, 31 days included (more-endpoints.md §1).
MAX_ORGANIZATION_RANGE_DAYS = ORGANIZATION_USAGE.max_range_days
#: Billing history paging: ``per_page`` when the request has none, and the most it may ask for.
HISTORY_DEFAULT_PER_PAGE = 20
HISTORY_MAX_PER_PAGE = 50
MAX_METRIC_IDS = 10
BODY_CHUNK_BYTES = 64 * 1024
# Route names here are the registry's, except the beta path's ("paygo").
_PAYGO_LIMITS = {
    ("paygo" if endpoint.source == "paygo" else name): endpoint.max_range_days
    for name, endpoint in PAYGO_ENDPOINTS.items()
}

_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

# (pattern, route name, needs Billing Read)
_ROUTE_TABLE: tuple[tuple[re.Pattern[str], str, bool], ...] = (
    (re.compile(r"^/accounts/(?P<account>[^/]+)/billing/usage/paygo$"), "paygo", True),
    (re.compile(r"^/accounts/(?P<account>[^/]+)/paygo-usage$"), "paygo-usage", True),
    (re.compile(r"^/accounts/(?P<account>[^/]+)/paygo-usage-info$"), "paygo-usage-info", True),
    (re.compile(r"^/accounts/(?P<account>[^/]+)/billable-usage$"), "billable-usage", True),
    (re.compile(r"^/accounts/(?P<account>[^/]+)/billable-usage/info$"), "billable-usage-info", True),
    (re.compile(r"^/accounts/(?P<account>[^/]+)/billable/usage$"), "v2", True),
    (re.compile(r"^/organizations/(?P<organization>[^/]+)/billable/usage$"), "organization-v2", True),
    (re.compile(r"^/accounts/(?P<account>[^/]+)/subscriptions$"), "subscriptions", True),
    (re.compile(r"^/accounts/(?P<account>[^/]+)/billing/history$"), "billing-history", True),
    (re.compile(r"^/accounts/(?P<account>[^/]+)/billing/profile$"), "profile", True),
    (re.compile(r"^/accounts/(?P<account>[^/]+)/tokens/verify$"), "account-verify", False),
    (re.compile(r"^/user/tokens/verify$"), "user-verify", False),
    (re.compile(r"^/accounts/(?P<account>[^/]+)$"), "account", False),
)
_BILLING_ROUTES = frozenset(name for _, name, billing in _ROUTE_TABLE if billing)


class ApiError(Exception):
    """A Cloudflare-style failure: HTTP status plus one error (with an optional ``error_chain``)."""

    def __init__(self, status: int, code: int, message: str, chain: Iterable[tuple[int, str]] = ()) -> None:
        super().__init__(f"{status} {code} {message}")
        self.status = status
        self.code = code
        self.message = message
        self.chain = tuple(chain)

    def error(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.chain:
            error["error_chain"] = [{"code": code, "message": message} for code, message in self.chain]
        return error


@dataclass
class Response:
    """A response to send: status, headers and a body (bytes, or a factory of byte chunks)."""

    status: int
    body: bytes | Callable[[], Iterator[bytes]]
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)

    def chunks(self) -> Iterator[bytes]:
        if isinstance(self.body, bytes):
            return iter((self.body,))
        return self.body()


@dataclass(frozen=True)
class Request:
    """The parts of an HTTP request the API cares about (``path`` is below ``/client/v4``)."""

    method: str
    path: str
    query: Mapping[str, list[str]]
    headers: Mapping[str, str]


@dataclass(frozen=True)
class Principal:
    """Who a request authenticated as."""

    scheme: str  # "bearer" | "global_key"
    token: ApiToken | None = None

    @property
    def billing_read(self) -> bool:
        return self.token is None or self.token.billing_read


def envelope(
    result: Any, messages: Iterable[Mapping[str, Any]] = (), result_info: Mapping[str, Any] | None = None
) -> bytes:
    body: dict[str, Any] = {"result": result}
    if result_info is not None:
        body["result_info"] = dict(result_info)
    body.update(success=True, errors=[], messages=list(messages))
    return _encode(body).encode()


def error_body(errors: Iterable[Mapping[str, Any]]) -> bytes:
    return _encode({"result": None, "success": False, "errors": list(errors), "messages": []}).encode()


def error_response(error: ApiError, headers: Iterable[tuple[str, str]] = ()) -> Response:
    return Response(error.status, error_body([error.error()]), headers=list(headers))


def auth_scheme(headers: Mapping[str, str]) -> str:
    """The scheme a request tried: ``bearer``, ``global_key`` or ``none`` (for the request log)."""
    if headers.get("authorization") is not None:
        return "bearer"
    if headers.get("x-auth-key") is not None or headers.get("x-auth-email") is not None:
        return "global_key"
    return "none"


def route_request(path: str) -> tuple[str, dict[str, str]]:
    """The route name for ``path`` (below the prefix) and its path parameters; ``unknown`` if none."""
    for pattern, name, _ in _ROUTE_TABLE:
        match = pattern.match(path)
        if match:
            return name, match.groupdict()
    return "unknown", {}


# -- auth ------------------------------------------------------------------------------------------

_HEADERS_ERROR = (400, 6003, "Invalid request headers")


def _bad_headers(code: int, message: str) -> ApiError:
    return ApiError(*_HEADERS_ERROR, chain=[(code, message)])


def _bearer_value(headers: Mapping[str, str]) -> str:
    raw = headers.get("authorization") or ""
    scheme, _, value = raw.strip().partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not TOKEN_PATTERN.match(value):
        raise _bad_headers(6111, "Invalid format for Authorization header")
    return value


def authenticate(emu: Emulator, route: str, account_id: str | None, headers: Mapping[str, str]) -> Principal:
    """Check credentials the way Cloudflare does; raise :class:`ApiError` on any failure."""
    credentials = emu.credentials
    if route in ("user-verify", "account-verify"):
        # Token verification only understands API tokens.
        value = _bearer_value(headers)
        token = credentials.find_token(value)
        if token is None:
            raise ApiError(401, 1000, "Invalid API Token")
        if route == "user-verify" and token.owner != "user":
            raise ApiError(401, 1000, "Invalid API Token")
        if route == "account-verify" and (token.owner != "account" or token.account_id != account_id):
            raise ApiError(401, 1000, "Invalid API Token")
        return Principal("bearer", token)

    if headers.get("authorization") is not None:
        token = credentials.find_token(_bearer_value(headers))
        if token is None or token.status != "active":
            raise ApiError(403, 9109, "Invalid access token")
        # An account-owned token reaches its own account only (never an organization route).
        if token.owner == "account" and token.account_id != account_id:
            raise ApiError(403, 9109, "Unauthorized to access requested resource")
        principal = Principal("bearer", token)
    else:
        email = (headers.get("x-auth-email") or "").strip()
        key = (headers.get("x-auth-key") or "").strip()
        if not key or not GLOBAL_KEY_PATTERN.match(key):
            raise _bad_headers(6103, "Invalid format for X-Auth-Key header")
        if not email or not EMAIL_PATTERN.match(email):
            raise _bad_headers(6102, "Invalid format for X-Auth-Email header")
        if credentials.find_global_key(email, key) is None:
            raise ApiError(403, 9103, "Unknown X-Auth-Key or X-Auth-Email")
        principal = Principal("global_key")
    if route in _BILLING_ROUTES and not principal.billing_read:
        raise ApiError(403, 10000, "Authentication error")
    return principal


# -- parameters ------------------------------------------------------------------------------------


def _bad_params(detail: str) -> ApiError:
    return ApiError(400, 1183, f"Invalid request parameters: {detail}")


def _date_param(query: Mapping[str, list[str]], name: str) -> date | None:
    values = query.get(name)
    if not values:
        return None
    text = values[0].strip()
    if not _DATE_RE.match(text):
        raise _bad_params(f"'{name}' must be a date in YYYY-MM-DD format (dates only, no time or timezone)")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise _bad_params(f"'{name}' is not a valid calendar date (YYYY-MM-DD)")


def _check_range_limit(start: date, end: date, inclusive: bool, max_days: int) -> None:
    """Refuse a range covering more than ``max_days`` days, counted the way ``to`` is read: with
    ``to`` inclusive, ``from=2025-05-01&to=2025-06-01`` covers 32 days."""
    covered = (end - start).days + (1 if inclusive else 0)
    if covered > max_days:
        reading = "inclusive" if inclusive else "exclusive"
        raise _bad_params(
            f"the maximum date range is {max_days} days (from {start} to {end} covers {covered} days, 'to' {reading})"
        )


def _day_range(start: date, end: date, inclusive: bool) -> list[date]:
    last = end if inclusive else end - timedelta(days=1)
    return [start + timedelta(days=offset) for offset in range((last - start).days + 1)]


def _available(emu: Emulator, days: Iterable[date], now: datetime) -> list[date]:
    return [day for day in days if emu.is_available(day, now)]


# -- handlers --------------------------------------------------------------------------------------


def _records_body(records: Iterator[dict[str, Any]]) -> Iterator[bytes]:
    """Serialise records into ``{"result":[...],...}`` chunks of about ``BODY_CHUNK_BYTES``."""
    yield b'{"result":['
    parts: list[str] = []
    size = 0
    separator = ""
    for record in records:
        text = separator + _encode(record)
        separator = ","
        parts.append(text)
        size += len(text)
        if size >= BODY_CHUNK_BYTES:
            yield "".join(parts).encode()
            parts = []
            size = 0
    parts.append('],"success":true,"errors":[],"messages":[]}')
    yield "".join(parts).encode()


def _shuffled(records: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    """``records`` in an order that depends only on ``key`` and always differs from theirs (if it can)."""
    order = list(range(len(records)))
    random.Random(key).shuffle(order)
    if order == sorted(order):
        order = order[1:] + order[:1]
    return [records[index] for index in order]


def _records_response(emu: Emulator, records: Callable[[], Iterator[dict[str, Any]]]) -> Response:
    """A 200 whose body lists ``records()`` (called again to regenerate the same bytes), shuffled per
    response with ``shuffle_records``."""
    shuffle_key = emu.next_shuffle_key() if emu.shuffle_records else None

    def body() -> Iterator[bytes]:
        produced = records()
        if shuffle_key is not None:
            # A permutation needs every record at hand: shuffled responses are not streamed lazily.
            produced = iter(_shuffled(list(produced), shuffle_key))
        return _records_body(produced)

    return Response(200, body)


def _usage_response(
    emu: Emulator, account_id: str, days: list[date], source: str, metric_ids: frozenset[str] | None
) -> Response:
    data = emu.account_data(account_id)
    # Fixed now, so the body regenerates the same bytes even if the emulator changes in between.
    restated = emu.restated_days(account_id)
    return _records_response(emu, lambda: data.records(days, source, metric_ids, restated))


def _v2_days(emu: Emulator, query: Mapping[str, list[str]], now: datetime, max_days: int) -> list[date]:
    """The days a v2-style request (account or organization) covers, before availability."""
    start = _date_param(query, "from")
    end = _date_param(query, "to")
    if (start is None) != (end is None):
        raise _bad_params("'from' and 'to' must be given together (or both omitted)")
    today = now.date()
    if start is None or end is None:
        return _day_range(today.replace(day=1), today, inclusive=True)
    if start > end:
        raise _bad_params("'from' must not be after 'to'")
    _check_range_limit(start, end, emu.to_inclusive, max_days)
    return _day_range(start, end, inclusive=emu.to_inclusive)


def _handle_v2(emu: Emulator, request: Request, account_id: str, now: datetime) -> Response:
    query = request.query
    days = _v2_days(emu, query, now, MAX_V2_RANGE_DAYS)
    metric_ids: frozenset[str] | None = None
    if not emu.ignore_metric_filter:
        wanted = [value.strip() for value in query.get("metric", [])[:1] if value.strip()]
        ids = [value.strip() for value in query.get("metric_id", []) if value.strip()]
        if len(ids) > MAX_METRIC_IDS:
            raise _bad_params(f"at most {MAX_METRIC_IDS} 'metric_id' values are allowed")
        if any(len(value) > 128 for value in [*wanted, *ids]):
            raise _bad_params("a metric id is at most 128 characters")
        if wanted or ids:
            metric_ids = frozenset([*wanted, *ids])
    return _usage_response(emu, account_id, _available(emu, days, now), "v2", metric_ids)


def _handle_organization_v2(emu: Emulator, request: Request, organization_id: str, now: datetime) -> Response:
    """Every account's v2 records, by day and then by account in the organization's order: for each day
    exactly what the account route serves for it. No metric filter (the SDK has none); an unknown
    organization, or one without accounts, is an empty list."""
    days = _available(emu, _v2_days(emu, request.query, now, MAX_ORGANIZATION_RANGE_DAYS), now)
    # Fixed now, so the body regenerates the same bytes even if the emulator changes in between.
    accounts = [
        (emu.account_data(account_id), emu.restated_days(account_id))
        for account_id in emu.organization_accounts(organization_id)
    ]

    def records() -> Iterator[dict[str, Any]]:
        for day in days:
            for data, restated in accounts:
                yield from data.records((day,), "v2", None, restated)

    return _records_response(emu, records)


def _int_param(query: Mapping[str, list[str]], name: str, default: int, maximum: int | None = None) -> int:
    values = query.get(name)
    if not values or not values[0].strip():
        return default
    text = values[0].strip()
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise _bad_params(f"'{name}' must be a whole number of at least 1")
    value = int(text)
    if maximum is not None and value > maximum:
        raise _bad_params(f"'{name}' must be at most {maximum}")
    return value


def _handle_history(emu: Emulator, request: Request, account_id: str, now: datetime) -> Response:
    """One page of the billing history (V4PagePaginationArray): ``[]`` past the last page, unless the
    ``history_repeat_pages`` switch makes every page the first one."""
    query = request.query
    page = _int_param(query, "page", 1)
    per_page = _int_param(query, "per_page", HISTORY_DEFAULT_PER_PAGE, HISTORY_MAX_PER_PAGE)
    status = (query.get("status") or [""])[0].strip() or None
    items = billing_history(emu.account_data(account_id), now, emu.history_items, status)
    first = 0 if emu.history_repeat_pages else (page - 1) * per_page
    chunk = items[first : first + per_page] if first < len(items) else []
    info: dict[str, Any] = {"page": page, "per_page": per_page, "count": len(chunk)}
    if not emu.history_hide_page_count:
        info["total_count"] = len(items)
        info["total_pages"] = -(-len(items) // per_page)
    return Response(200, envelope(chunk, result_info=info))


def _handle_subscriptions(emu: Emulator, account_id: str, now: datetime) -> Response:
    return Response(200, envelope(subscriptions(emu.account_data(account_id), now)))


def _handle_paygo(emu: Emulator, request: Request, account_id: str, route: str, now: datetime) -> Response:
    data = emu.account_data(account_id)
    start = _date_param(request.query, "from")
    end = _date_param(request.query, "to")
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
        raise _bad_params("'from' must not be after 'to'")
    _check_range_limit(start, end, inclusive, _PAYGO_LIMITS[route])
    days = _day_range(start, end, inclusive)
    if route in ("paygo-usage", "billable-usage") and not any(day.day == data.anchor_day for day in days):
        # The documented trap: a range without the billing-cycle anchor day returns no usage at all.
        days = []
    return _usage_response(emu, account_id, _available(emu, days, now), route, None)


def _handle_info(emu: Emulator, account_id: str) -> Response:
    data = emu.account_data(account_id)
    return Response(200, envelope({"covered": True, "subscriptions": [data.subscription_info()]}))


def _handle_profile(emu: Emulator, account_id: str, now: datetime) -> Response:
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


def _handle_verify(token: ApiToken | None) -> Response:
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


def _handle_account(emu: Emulator, account_id: str) -> Response:
    data = emu.account_data(account_id)
    account = {
        "id": account_id,
        "name": data.name,
        "type": "standard",
        "settings": {"enforce_twofactor": False, "use_account_custom_ns_by_default": False},
        "created_on": timestamp(data.subscription_start),
    }
    return Response(200, envelope(account))


def handle(emu: Emulator, request: Request, route: str, params: Mapping[str, str]) -> Response:
    """Answer one request to a known or unknown route (faults and rate limits are applied elsewhere)."""
    try:
        if route == "unknown":
            raise ApiError(404, 7003, "No route for the URI")
        account_id = params.get("account")
        organization_id = params.get("organization")
        if (account_id is not None and not ACCOUNT_ID_PATTERN.match(account_id)) or (
            organization_id is not None and not ORGANIZATION_ID_PATTERN.match(organization_id)
        ):
            raise ApiError(404, 7003, "Could not route to the URI, perhaps your object identifier is invalid?")
        if request.method != "GET":
            raise ApiError(405, 10405, f"Method {request.method} not allowed for this route")
        principal = authenticate(emu, route, account_id, request.headers)
        now = emu.now()
        if route in ("user-verify", "account-verify"):
            return _handle_verify(principal.token)
        if route == "organization-v2":
            assert organization_id is not None
            return _handle_organization_v2(emu, request, organization_id, now)
        assert account_id is not None
        if route == "v2":
            return _handle_v2(emu, request, account_id, now)
        if route == "subscriptions":
            return _handle_subscriptions(emu, account_id, now)
        if route == "billing-history":
            return _handle_history(emu, request, account_id, now)
        if route in ("paygo", "paygo-usage", "billable-usage"):
            return _handle_paygo(emu, request, account_id, route, now)
        if route in ("paygo-usage-info", "billable-usage-info"):
            return _handle_info(emu, account_id)
        if route == "profile":
            return _handle_profile(emu, account_id, now)
        return _handle_account(emu, account_id)
    except ApiError as error:
        return error_response(error)


def utc_midnight(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time(), tzinfo=timezone.utc)
