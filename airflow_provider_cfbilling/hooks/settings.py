"""What the hook takes from its Airflow connection: credentials, base URL, timeouts, retries.

Read once per hook (a connection lookup, never an API request) and validated, so a wrong field
fails before any request with a message that names it and says how to fix it.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import ipaddress
import json
import os
import random
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import urlsplit

import httpx

from airflow_provider_cfbilling import __version__, validation
from airflow_provider_cfbilling.endpoints import DEFAULT_PAYGO_PATH, PAYGO_PATHS, paygo_endpoint
from airflow_provider_cfbilling.exceptions import CloudflareInputError
from airflow_provider_cfbilling.version_compat import aget_connection, mask_secret

DEFAULT_BASE_URL = "https://api.cloudflare.com/client/v4"
V2_METRIC_PARAMS = ("both", "metric", "metric_id")


@dataclass(frozen=True)
class RetrySettings:
    """How transient failures are retried.

    ``max_retries`` retries after the first attempt; backoff doubles from ``backoff_base`` up to
    ``backoff_max`` with full jitter in its upper half; a ``Retry-After`` header replaces the
    backoff, capped at ``retry_after_max`` (default 6 minutes: longer than Cloudflare's 5-minute
    rate-limit block).
    """

    max_retries: int = 8
    backoff_base: float = 1.0
    backoff_max: float = 60.0
    retry_after_max: float = 360.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.retry_after_max)
        backoff = min(self.backoff_max, self.backoff_base * (2**attempt))
        return backoff * random.uniform(0.5, 1.0)

    def as_dict(self) -> dict[str, float | int]:
        return {
            "max_retries": self.max_retries,
            "backoff_base": self.backoff_base,
            "backoff_max": self.backoff_max,
            "retry_after_max": self.retry_after_max,
        }


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delay-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return max(when.timestamp() - (time.time() if now is None else now), 0.0)


@dataclass(frozen=True)
class ConnectionSettings:
    """What the hook takes from the Airflow connection (and its own arguments)."""

    base_url: str
    auth_headers: dict[str, str] = field(repr=False)
    auth_scheme: str  # "token" or "global_key"
    account_id: str | None
    organization_id: str | None
    timeout: float
    verify: bool
    retry: RetrySettings
    paygo_path: str
    v2_metric_param: str
    secrets: tuple[str, ...] = field(repr=False, default=())


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class UsageScope(NamedTuple):
    """Whose usage: exactly one of ``account_id`` and ``organization_id`` is set."""

    account_id: str | None
    organization_id: str | None

    @property
    def id(self) -> str:
        return self.organization_id or self.account_id or ""


class SettingsMixin:
    """The hook's settings, read from its connection (``cloudflare_conn_id``) and overrides."""

    cloudflare_conn_id: str
    _overrides: dict[str, Any]
    _settings: ConnectionSettings | None

    if TYPE_CHECKING:

        def get_connection(self, conn_id: str) -> Any: ...  # BaseHook's

    @property
    def settings(self) -> ConnectionSettings:
        """Settings from the connection, read once (a connection lookup, never an API request)."""
        if self._settings is None:
            try:
                connection = self.get_connection(self.cloudflare_conn_id)
            except Exception:
                self._explain_unreadable_environment_connection()
                raise
            self._settings = self._settings_from(connection)
        return self._settings

    def resolve_account_id(self, account_id: str | None = None) -> str:
        """``account_id`` if given, else the connection's ``extra.account_id``; validated."""
        if account_id:
            return validation.account_id(account_id)
        return validation.account_id(self.settings.account_id)

    def resolve_organization_id(self, organization_id: str | None = None) -> str | None:
        """``organization_id`` if given, else the connection's ``extra.organization_id``, else None."""
        if organization_id:
            return validation.organization_id(organization_id)
        return self.settings.organization_id

    def resolve_usage_scope(
        self, account_id: str | None = None, organization_id: str | None = None, *, source: str = "v2"
    ) -> UsageScope:
        """Whose usage a task reads: one account, or (v2 only) every account of an organization.

        An explicit ``organization_id``, else the connection's ``extra.organization_id`` (v2 only),
        selects the organization; then an explicit ``account_id`` is an error (the connection's
        default account is ignored). Otherwise the account is ``account_id`` or the connection's.
        """
        if source != "v2" and organization_id:
            raise CloudflareInputError(
                "organization_id", "organizations have v2 usage only", "Use source='v2' with organization_id"
            )
        organization = self.resolve_organization_id(organization_id or None) if source == "v2" else None
        if organization and account_id:
            raise CloudflareInputError(
                "organization_id",
                f"both organization_id ({organization}) and account_id ({account_id}) were given",
                "Give account_id for one account's usage, or organization_id for every account of the organization",
            )
        if organization:
            return UsageScope(account_id=None, organization_id=organization)
        return UsageScope(account_id=self.resolve_account_id(account_id or None), organization_id=None)

    async def _asettings(self) -> ConnectionSettings:
        if self._settings is None:
            try:
                connection = await aget_connection(self.cloudflare_conn_id)
            except Exception:
                self._explain_unreadable_environment_connection()
                raise
            self._settings = self._settings_from(connection)
        return self._settings

    def _explain_unreadable_environment_connection(self) -> None:
        """Raise a clear error when the lookup failed because ``AIRFLOW_CONN_<ID>`` is unreadable.

        Some Airflow versions (3.0) drop an environment connection whose JSON they cannot load
        and report the connection as not defined; the cause is then named here. Returns (so the
        original error propagates) when the variable is absent or reads fine.
        """
        variable = f"AIRFLOW_CONN_{self.cloudflare_conn_id.upper()}"
        raw = os.environ.get(variable, "").strip()
        if not raw.startswith("{"):
            return
        try:
            document = json.loads(raw)
        except ValueError:
            raise CloudflareInputError(
                f"connection {self.cloudflare_conn_id}",
                f"the environment variable {variable} is not valid JSON",
                "Set it to a JSON object with conn_type, password and extra (or to a connection URI)",
            ) from None
        if isinstance(document, dict):
            self._parse_extra(document.get("extra"))

    def _parse_extra(self, raw: Any) -> dict[str, Any]:
        """The connection's ``extra`` as a dict; a clear error when it is not a JSON object."""
        conn_id = self.cloudflare_conn_id
        extra: Any = {}
        if raw:
            try:
                extra = json.loads(raw) if isinstance(raw, str) else raw
            except ValueError:
                raise CloudflareInputError(
                    f"connection {conn_id} extra", "is not valid JSON", 'Use a JSON object, e.g. {"account_id": "..."}'
                ) from None
        if not isinstance(extra, dict):
            raise CloudflareInputError(
                f"connection {conn_id} extra", "is not a JSON object", 'Use e.g. {"account_id": "..."}'
            )
        return extra

    def _settings_from(self, connection: Any) -> ConnectionSettings:
        conn_id = self.cloudflare_conn_id
        extra = self._parse_extra(connection.extra)

        def option(key: str) -> Any:
            if key in self._overrides:
                return self._overrides[key]
            for candidate in (key, f"extra__cloudflare__{key}"):
                if extra.get(candidate) not in (None, ""):
                    return extra[candidate]
            return None

        secret = connection.password or option("api_token")
        login = connection.login
        if not secret:
            raise CloudflareInputError(
                f"connection {conn_id} password",
                "no API token (or global API key) is set",
                "Put an API token with Billing Read in the connection's password field",
            )
        secret = str(secret).strip()
        if login:
            email = str(login).strip()
            if "@" not in email:
                raise CloudflareInputError(
                    f"connection {conn_id} login",
                    "is not an email address",
                    "For the global API key set login to the account email; for an API token leave login empty",
                )
            headers = {"X-Auth-Email": email, "X-Auth-Key": secret}
            scheme = "global_key"
            secrets: tuple[str, ...] = (secret, email)
        else:
            if any(char.isspace() for char in secret) or secret.lower().startswith("bearer"):
                raise CloudflareInputError(
                    f"connection {conn_id} password",
                    "the API token contains spaces or a 'Bearer' prefix",
                    "Paste the token alone, without 'Bearer ' or surrounding spaces",
                )
            headers = {"Authorization": f"Bearer {secret}"}
            scheme = "token"
            secrets = (secret,)
        for value in secrets:
            mask_secret(value)

        def name(key: str) -> str:
            return key if key in self._overrides else f"connection {conn_id} extra.{key}"

        account = option("account_id")
        account = validation.account_id(account, f"connection {conn_id} extra.account_id") if account else None
        organization = option("organization_id")
        if organization:
            organization = validation.organization_id(organization, f"connection {conn_id} extra.organization_id")
        timeout = validation.positive_number(option("timeout") or 60, name("timeout"), allow_zero=False)
        verify_option = option("verify")
        verify = True if verify_option is None else validation.boolean(verify_option, name("verify"))
        retry = RetrySettings(
            max_retries=int(
                validation.positive_number(
                    8 if option("max_retries") is None else option("max_retries"), name("max_retries"), integer=True
                )
            ),
            backoff_base=validation.positive_number(
                1.0 if option("backoff_base") is None else option("backoff_base"), name("backoff_base")
            ),
            backoff_max=validation.positive_number(
                60.0 if option("backoff_max") is None else option("backoff_max"), name("backoff_max")
            ),
            retry_after_max=validation.positive_number(
                360.0 if option("retry_after_max") is None else option("retry_after_max"), name("retry_after_max")
            ),
        )
        paygo_path = str(option("paygo_path") or DEFAULT_PAYGO_PATH).strip("/")
        if paygo_endpoint(paygo_path) is None:
            raise CloudflareInputError(
                f"connection {conn_id} extra.paygo_path",
                f"{paygo_path!r} is not a PayGo path",
                f"Use one of {', '.join(PAYGO_PATHS)}",
            )
        v2_metric_param = str(option("v2_metric_param") or "both")
        if v2_metric_param not in V2_METRIC_PARAMS:
            raise CloudflareInputError(
                f"connection {conn_id} extra.v2_metric_param",
                f"{v2_metric_param!r} is not supported",
                f"Use one of {', '.join(V2_METRIC_PARAMS)}",
            )
        insecure = option("allow_insecure_http")
        allow_insecure_http = insecure is not None and validation.boolean(
            insecure, f"connection {conn_id} extra.allow_insecure_http"
        )
        base_url = self._base_url(connection, allow_insecure_http)
        return ConnectionSettings(
            base_url=base_url,
            auth_headers=headers,
            auth_scheme=scheme,
            account_id=account,
            organization_id=organization or None,
            timeout=timeout,
            verify=verify,
            retry=retry,
            paygo_path=paygo_path,
            v2_metric_param=v2_metric_param,
            secrets=secrets,
        )

    def _base_url(self, connection: Any, allow_insecure_http: bool) -> str:
        host = (connection.host or "").strip()
        if not host:
            return DEFAULT_BASE_URL
        if "://" not in host:
            bare_host = host.split("/")[0]
            scheme = "http" if _is_loopback(bare_host.rsplit(":", 1)[0]) else "https"
            path = "/" + (connection.schema or "client/v4").strip("/")
            port = f":{connection.port}" if connection.port else ""
            host = f"{scheme}://{bare_host}{port}{path if '/' not in host else '/' + host.split('/', 1)[1]}"
        parts = urlsplit(host)
        name = f"connection {self.cloudflare_conn_id} host"
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise CloudflareInputError(name, f"{host!r} is not an http(s) URL", f"Use e.g. {DEFAULT_BASE_URL}")
        if parts.username or parts.password:
            raise CloudflareInputError(name, "the URL holds credentials", "Keep credentials in login/password only")
        if parts.scheme == "http" and not _is_loopback(parts.hostname) and not allow_insecure_http:
            raise CloudflareInputError(
                name,
                f"plain http to {parts.hostname} would send the credentials unencrypted",
                "Use https, or set extra.allow_insecure_http=true if you really mean it",
            )
        return host.rstrip("/")

    def _headers(self, settings: ConnectionSettings) -> dict[str, str]:
        return {
            **settings.auth_headers,
            "Accept": "application/json",
            "User-Agent": f"airflow-provider-cfbilling/{__version__} httpx/{httpx.__version__}",
        }
