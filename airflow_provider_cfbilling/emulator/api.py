"""The emulated Cloudflare API's front: one parsed request in, one :class:`~.responses.Response` out.

:func:`handle` checks what every route shares (a known route, well-formed identifiers, ``GET``, valid
credentials) and passes the request to its route's handler. It knows nothing about sockets: faults,
the rate limit and the request log are applied by ``server.py`` in front of it. The pieces:

* ``routes.py``: which route a path is;
* ``auth.py``: who the request is, and whether that may read billing data;
* ``params.py``: the query-parameter rules (dates, range limits, paging);
* ``handlers.py``: what each route answers;
* ``responses.py``: the request and response types and Cloudflare's body shapes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from airflow_provider_cfbilling.emulator import handlers
from airflow_provider_cfbilling.emulator.auth import authenticate
from airflow_provider_cfbilling.emulator.credentials import ACCOUNT_ID_PATTERN
from airflow_provider_cfbilling.emulator.organizations import ORGANIZATION_ID_PATTERN
from airflow_provider_cfbilling.emulator.responses import ApiError, Request, Response, error_response

if TYPE_CHECKING:
    from airflow_provider_cfbilling.emulator.state import EmulatorState

_VERIFY_ROUTES = ("user-verify", "account-verify")
_PAYGO_ROUTES = ("paygo", "paygo-usage", "billable-usage")
_PAYGO_INFO_ROUTES = ("paygo-usage-info", "billable-usage-info")


def handle(emu: EmulatorState, request: Request, route: str, params: Mapping[str, str]) -> Response:
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
        principal = authenticate(emu.credentials, route, account_id, request.headers)
        now = emu.now()
        if route in _VERIFY_ROUTES:
            return handlers.handle_verify(principal.token)
        if route == "organization-v2":
            assert organization_id is not None
            return handlers.handle_organization_v2(emu, request, organization_id, now)
        assert account_id is not None
        if route == "v2":
            return handlers.handle_v2(emu, request, account_id, now)
        if route == "subscriptions":
            return handlers.handle_subscriptions(emu, account_id, now)
        if route == "billing-history":
            return handlers.handle_history(emu, request, account_id, now)
        if route in _PAYGO_ROUTES:
            return handlers.handle_paygo(emu, request, account_id, route, now)
        if route in _PAYGO_INFO_ROUTES:
            return handlers.handle_info(emu, account_id)
        if route == "profile":
            return handlers.handle_profile(emu, account_id, now)
        return handlers.handle_account(emu, account_id)
    except ApiError as error:
        return error_response(error)
