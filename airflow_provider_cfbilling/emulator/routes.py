"""Which emulated Cloudflare route a path is: the route table, and which routes need Billing Read.

Route names are the fault selectors' (``faults.ROUTES``) and the request log's ``route``; the PayGo
ones are the endpoint registry's names, except the beta path's (``paygo``).
"""

from __future__ import annotations

import re

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
BILLING_ROUTES = frozenset(name for _, name, billing in _ROUTE_TABLE if billing)


def route_request(path: str) -> tuple[str, dict[str, str]]:
    """The route name for ``path`` (below the prefix) and its path parameters; ``unknown`` if none."""
    for pattern, name, _ in _ROUTE_TABLE:
        match = pattern.match(path)
        if match:
            return name, match.groupdict()
    return "unknown", {}
