"""Who a request is: the credentials it presents, checked the way Cloudflare checks them.

API tokens (``Authorization: Bearer``) and global keys (``X-Auth-Email`` + ``X-Auth-Key``); token
verification routes accept tokens only; an account-owned token reaches its own account only; the
billing routes need Billing Read. Every failure is an :class:`~.responses.ApiError` with Cloudflare's
status, code and message.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from airflow_provider_cfbilling.emulator.credentials import (
    EMAIL_PATTERN,
    GLOBAL_KEY_PATTERN,
    TOKEN_PATTERN,
    ApiToken,
    Credentials,
)
from airflow_provider_cfbilling.emulator.responses import ApiError
from airflow_provider_cfbilling.emulator.routes import BILLING_ROUTES


@dataclass(frozen=True)
class Principal:
    """Who a request authenticated as."""

    scheme: str  # "bearer" | "global_key"
    token: ApiToken | None = None

    @property
    def billing_read(self) -> bool:
        return self.token is None or self.token.billing_read


def auth_scheme(headers: Mapping[str, str]) -> str:
    """The scheme a request tried: ``bearer``, ``global_key`` or ``none`` (for the request log)."""
    if headers.get("authorization") is not None:
        return "bearer"
    if headers.get("x-auth-key") is not None or headers.get("x-auth-email") is not None:
        return "global_key"
    return "none"


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


def authenticate(credentials: Credentials, route: str, account_id: str | None, headers: Mapping[str, str]) -> Principal:
    """Check credentials the way Cloudflare does; raise :class:`ApiError` on any failure."""
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
    if route in BILLING_ROUTES and not principal.billing_read:
        raise ApiError(403, 10000, "Authentication error")
    return principal
