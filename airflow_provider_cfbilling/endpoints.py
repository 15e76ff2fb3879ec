"""The usage endpoints Cloudflare serves, in one registry: route, info route, record source,
anchor-day rule and range limit. The hook, the operators, the sensor and the emulator read it.

Pure Python with no imports from the rest of the package, so provider metadata
(``get_provider_info``) can build its PayGo enum from it while Airflow is still starting.

Range limits are in days *covered by a request*. Whether the server reads ``to`` inclusively is
not documented, so a request must fit under both readings: with ``to`` inclusive a request
``from=A&to=B`` covers ``B - A + 1`` days, hence :func:`max_request_gap` (``to - from`` at most
the limit minus one).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class UsageEndpoint:
    """One usage endpoint.

    :param name: what users pass (``paygo_path``) or the sensor's ``source``.
    :param route: the path template, ``{account_id}`` to fill.
    :param info_route: the route listing the subscriptions' billing-cycle anchors, if any.
    :param source: the record source (``records.SCHEMAS`` key).
    :param anchor_rule: the server returns nothing unless the range contains a billing-cycle
        anchor day (the spec's warning on ``/paygo-usage`` and ``/billable-usage``).
    :param max_range_days: the most days one request may cover.
    :param focus_version: the FinOps FOCUS version its records follow, if any.
    """

    name: str
    route: str
    info_route: str | None
    source: str
    anchor_rule: bool
    max_range_days: int
    focus_version: str | None = None


V2_USAGE = UsageEndpoint(
    name="v2",
    route="/accounts/{account_id}/billable/usage",
    info_route=None,
    source="v2",
    anchor_rule=False,
    max_range_days=31,  # "The maximum date range is 31 days" (the operation's description)
    focus_version="1.3",  # "aligned with the FinOps FOCUS v1.3 ... specification"
)

# Every account of an organization at once: the same FOCUS records and rules as V2_USAGE.
ORGANIZATION_USAGE = UsageEndpoint(
    name="organization",
    route="/organizations/{organization_id}/billable/usage",
    info_route=None,
    source="v2",
    anchor_rule=False,
    max_range_days=31,
    focus_version="1.3",
)

PAYGO_ENDPOINTS: dict[str, UsageEndpoint] = {
    endpoint.name: endpoint
    for endpoint in (
        # The newest PayGo path. Its range limit is not documented: we assume one year
        # (366 days, leap years included), which the emulator enforces. Longer windows are split;
        # if the real limit proves smaller, lowering this number is the whole fix.
        UsageEndpoint(
            name="billable-usage",
            route="/accounts/{account_id}/billable-usage",
            info_route="/accounts/{account_id}/billable-usage/info",
            source="billable-usage",
            anchor_rule=True,
            max_range_days=366,
        ),
        UsageEndpoint(
            name="paygo-usage",
            route="/accounts/{account_id}/paygo-usage",
            info_route="/accounts/{account_id}/paygo-usage-info",
            source="paygo-usage",
            anchor_rule=True,
            max_range_days=366,
        ),
        # The beta path: its 'Beta' revision documents date-range mode as "maximum 62 days".
        UsageEndpoint(
            name="billing/usage/paygo",
            route="/accounts/{account_id}/billing/usage/paygo",
            info_route=None,
            source="paygo",
            anchor_rule=False,
            max_range_days=62,
        ),
    )
}

PAYGO_PATHS = list(PAYGO_ENDPOINTS)
# The usage sources a task may read: "v2" (FOCUS, accounts and organizations) or "paygo" (any PayGo path).
USAGE_SOURCES = ("v2", "paygo")

# Snapshots (one request, or pages of one).
PROFILE_ROUTE = "/accounts/{account_id}/billing/profile"
SUBSCRIPTIONS_ROUTE = "/accounts/{account_id}/subscriptions"
BILLING_HISTORY_ROUTE = "/accounts/{account_id}/billing/history"  # paginated: page, per_page
DEFAULT_HISTORY_PER_PAGE = 50
DEFAULT_HISTORY_MAX_PAGES = 1000
DEFAULT_PAYGO_PATH = "billable-usage"


def max_request_gap(endpoint: UsageEndpoint) -> int:
    """The largest ``to - from`` (in days) that fits the endpoint's limit under either reading of ``to``."""
    return endpoint.max_range_days - 1


def paygo_endpoint(name: str) -> UsageEndpoint | None:
    """The PayGo endpoint called ``name`` (slashes around it ignored), or None."""
    return PAYGO_ENDPOINTS.get(name.strip("/"))


__all__ = [
    "BILLING_HISTORY_ROUTE",
    "DEFAULT_HISTORY_MAX_PAGES",
    "DEFAULT_HISTORY_PER_PAGE",
    "DEFAULT_PAYGO_PATH",
    "ORGANIZATION_USAGE",
    "PAYGO_ENDPOINTS",
    "PAYGO_PATHS",
    "PROFILE_ROUTE",
    "SUBSCRIPTIONS_ROUTE",
    "V2_USAGE",
    "UsageEndpoint",
    "max_request_gap",
    "paygo_endpoint",
]
