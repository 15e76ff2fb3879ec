"""The Cloudflare hook: connection, auth, the wire, retries and the response envelope.

Every request goes through one retry conversation (:meth:`CloudflareHook._conversation`), a
generator that decides what to do with each outcome; a sync driver (``httpx.Client``) and an
async driver (``httpx.AsyncClient``, for triggers) only perform its sends and sleeps. Bodies are
spooled in full inside the retry loop (so a connection cut mid-body is retried like any other
transient failure) and then parsed once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import ipaddress
import json
import logging
import os
import random
import tempfile
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from typing import IO, Any, ClassVar
from urllib.parse import urlsplit

import httpx

from airflow_provider_cfbilling import __version__, validation
from airflow_provider_cfbilling.endpoints import (
    DEFAULT_PAYGO_PATH,
    PAYGO_PATHS,
    V2_USAGE,
    UsageEndpoint,
    max_request_gap,
    paygo_endpoint,
)
from airflow_provider_cfbilling.exceptions import (
    CloudflareAPIError,
    CloudflareInputError,
    CloudflareRequestError,
    CloudflareServerError,
)
from airflow_provider_cfbilling.hooks.envelope import (
    MalformedBodyError,
    check_envelope,
    classify_error,
    iter_envelope_records,
)
from airflow_provider_cfbilling.version_compat import BaseHook, aget_connection, mask_secret

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.cloudflare.com/client/v4"
# Bodies up to this size are parsed whole inside the retry loop (so a garbled one is retried);
# larger ones are parsed record by record by the caller.
_PARSE_WHOLE_LIMIT = 1 << 20
_SPOOL_MEMORY = 8 << 20
V2_USAGE_ROUTE = V2_USAGE.route
PROFILE_ROUTE = "/accounts/{account_id}/billing/profile"
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
    timeout: float
    verify: bool
    retry: RetrySettings
    paygo_path: str
    v2_metric_param: str
    secrets: tuple[str, ...] = field(repr=False, default=())


@dataclass(frozen=True)
class _Call:
    """One API request, validated and ready to send."""

    path: str  # with the account filled in
    endpoint: str  # the route template, for messages
    params: tuple[tuple[str, str], ...] = ()
    streams_records: bool = False


@dataclass
class _Body:
    status: int
    retry_after: str | None
    spool: IO[bytes]
    size: int
    result: Any = None
    parsed: bool = False


@dataclass(frozen=True)
class _Send:
    call: _Call


@dataclass(frozen=True)
class _Sleep:
    seconds: float


class _Retryable(Exception):
    def __init__(self, error: CloudflareAPIError, retry_after: float | None) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry_after = retry_after


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class CloudflareHook(BaseHook):
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

    # ------------------------------------------------------------------ connection form

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """Extra fields of the connection form for the Airflow 2.x / 3.0 / 3.1 UIs."""
        from flask_appbuilder.fieldwidgets import BS3TextFieldWidget
        from flask_babel import lazy_gettext
        from wtforms import BooleanField, IntegerField, StringField
        from wtforms.validators import NumberRange, Optional, any_of

        return {
            "account_id": StringField(lazy_gettext("Account ID"), widget=BS3TextFieldWidget()),
            "timeout": IntegerField(
                lazy_gettext("Timeout (seconds)"),
                widget=BS3TextFieldWidget(),
                validators=[Optional(), NumberRange(min=1)],
            ),
            "max_retries": IntegerField(
                lazy_gettext("Max retries"), widget=BS3TextFieldWidget(), validators=[Optional(), NumberRange(min=0)]
            ),
            "verify": BooleanField(lazy_gettext("Verify TLS"), default=True),
            # The providers manager of Airflow 2.x / 3.0 / 3.1 accepts only String, Integer,
            # Password and Boolean fields (it drops the whole hook for a SelectField); the 3.0/3.1
            # UI turns ``any_of`` into the field's enum.
            "paygo_path": StringField(
                lazy_gettext("PayGo endpoint"),
                widget=BS3TextFieldWidget(),
                validators=[Optional(), any_of(PAYGO_PATHS)],
                default=DEFAULT_PAYGO_PATH,
            ),
        }

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Relabelled and hidden standard fields for the Airflow 2.x / 3.0 / 3.1 UIs."""
        from airflow_provider_cfbilling.get_provider_info import _ui_field_behaviour

        behaviour = _ui_field_behaviour()
        return {
            "hidden_fields": behaviour["hidden-fields"],
            "relabeling": behaviour["relabeling"],
            "placeholders": behaviour["placeholders"],
        }

    # ------------------------------------------------------------------ settings

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

    def resolve_account_id(self, account_id: str | None = None) -> str:
        """``account_id`` if given, else the connection's ``extra.account_id``; validated."""
        if account_id:
            return validation.account_id(account_id)
        return validation.account_id(self.settings.account_id)

    # ------------------------------------------------------------------ calls (validation, no I/O)

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
        if metric is not None:
            if not isinstance(metric, str) or not metric.strip() or any(c.isspace() for c in metric.strip()):
                raise CloudflareInputError(
                    "metric", f"{metric!r} is not a billable metric id", "Use an id such as workers_standard_requests"
                )
            if settings.v2_metric_param in ("both", "metric"):
                params.append(("metric", metric.strip()))
            if settings.v2_metric_param in ("both", "metric_id"):
                params.append(("metric_id", metric.strip()))
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

    def get_billing_profile(self, account_id: str | None = None) -> dict[str, Any]:
        """The account's billing profile (personal and payment data: redact before storing)."""
        account_path, endpoint = self._account_path(PROFILE_ROUTE, account_id, self.settings)
        result = self._json(_Call(path=account_path, endpoint=endpoint))
        if not isinstance(result, dict):
            raise MalformedBodyError("The billing profile is not an object", status=200, endpoint=endpoint)
        return result

    def test_connection(self) -> tuple[bool, str]:
        """Check, in order, what every task needs, and say which check failed and how to fix it.

        1. Credentials: valid and active. User-owned token: ``GET /user/tokens/verify``;
           account-owned token: ``GET /accounts/{account_id}/tokens/verify``; global API key:
           ``GET /accounts/{account_id}`` (the verify endpoints do not take the key).
        2. Account: ``extra.account_id`` is set (an account-owned token and the global key can only
           be checked on their account; every billing call is per account).
        3. Billing Read: one cheap billing request on that account (see below).

        On success the message names what was checked. Messages never hold a credential.
        """
        try:
            settings = self.settings
        except CloudflareInputError as error:
            return False, self.redact(f"Connection fields check failed: {error}")
        account = settings.account_id
        answer = self._test_connection_answer
        step = "Credentials"
        try:
            # ---- 1. credentials (and, where they need one, 2. the account)
            if settings.auth_scheme == "global_key":
                if not account:
                    return False, (
                        "Account check failed: a global API key can only be checked on an account, and "
                        "extra.account_id is not set. Fix: set extra.account_id to the 32-character account id "
                        "(dashboard: Account Home, Account ID), or use an API token with Account > Billing > Read"
                    )
                route = "/accounts/{account_id}"
                try:
                    details = self._json(_Call(path=route.format(account_id=account), endpoint=route))
                except CloudflareAPIError as error:
                    if error.status == 404:
                        return False, self.redact(
                            f"Account check failed: Cloudflare knows no account {account} for this email and global "
                            f"API key (GET {route}: {answer(error)}). Fix: set extra.account_id to the id shown on "
                            "the dashboard's Account Home"
                        )
                    if error.status not in (400, 401, 403):
                        raise
                    return False, self.redact(
                        f"Credentials check failed: Cloudflare rejected the email and global API key for account "
                        f"{account} ({answer(error)}). Fix: check the login (the account email) and the Global API "
                        "Key (My Profile > API Tokens > Global API Key), and that this user is a member of the "
                        "account; better, use an API token with Account > Billing > Read"
                    )
                name = details.get("name") if isinstance(details, dict) else None
                credentials = f"global API key accepted (GET {route}, account name {name or 'not given'})"
                kind = "the global API key (its user)"
            else:
                route = "/user/tokens/verify"
                try:
                    verified = self._json(_Call(path=route, endpoint=route))
                    owner = "user-owned API token"
                except CloudflareAPIError as user_error:
                    if user_error.status not in (400, 401, 403):
                        raise
                    if not account:
                        # Account-owned tokens fail /user/tokens/verify; they can only be verified on
                        # their account, so the missing account id is the problem to report.
                        codes = ", ".join(str(code) for code in user_error.codes) or "none"
                        return False, self.redact(
                            "Account check failed: the token is not a user-owned API token (GET /user/tokens/verify "
                            f"answered HTTP {user_error.status}, code {codes}), and extra.account_id is not set. "
                            "An account-owned token (Manage Account > Account API Tokens) can only be verified on "
                            "its account: set extra.account_id to the id of the account that owns the token. If the "
                            "token is user-owned, it is invalid: paste it again or create a new one"
                        )
                    route = "/accounts/{account_id}/tokens/verify"
                    try:
                        verified = self._json(_Call(path=route.format(account_id=account), endpoint=route))
                    except CloudflareAPIError as account_error:
                        if account_error.status not in (400, 401, 403):
                            raise
                        return False, self.redact(
                            "Credentials check failed: the token is neither a valid user-owned API token "
                            f"(GET /user/tokens/verify: {answer(user_error)}) nor an account-owned token of account "
                            f"{account} (GET {route}: {answer(account_error)}). Fix: paste the token again (no "
                            "'Bearer ' prefix) or create a new one; for an account-owned token, set "
                            "extra.account_id to the account that owns it"
                        )
                    owner = f"account-owned API token of account {account}"
                status = verified.get("status") if isinstance(verified, dict) else None
                if status != "active":
                    return False, self.redact(
                        f"Credentials check failed: the {owner} is {status or 'not active'} (GET {route}). Fix: "
                        "re-enable it, or roll it or create a new one, in the dashboard's API Tokens page, and put "
                        "the new value in the connection's password"
                    )
                credentials = f"{owner} is active (GET {route})"
                kind = "the token"
                step = "Account"
                if not account:
                    return False, (
                        f"Account check failed: the {owner} is active, but extra.account_id is not set, so no "
                        "billing data can be read with this connection alone and Billing Read cannot be checked. "
                        "Fix: set extra.account_id to the 32-character id of the account to read"
                    )

            # ---- 3. Billing Read: one cheap request to the configured PayGo path (extra.paygo_path),
            # the endpoint family the PayGo tasks call. Its info endpoint (/billable-usage/info,
            # /paygo-usage-info) answers a few hundred bytes (subscriptions, no usage records), takes no
            # dates (no range rule, no anchor-day trap) and is a billing route behind Billing Read; a 404
            # there also says the configured path is not served to this account. The beta path
            # (billing/usage/paygo) has no info endpoint: one day [yesterday, today) on it, at most two
            # days of rows aggregated per metric and day under either reading of `to`. Not v2
            # usage: it is "Restricted", so a 403/404 there would not tell a token without Billing Read
            # from an account without v2 access. Not the billing profile: it returns personal data.
            step = "Billing Read"
            paygo = self.paygo_usage_endpoint()
            try:
                if paygo.info_route is not None:
                    billing_check = f"GET {paygo.info_route}"
                    self.get_paygo_usage_info()
                else:
                    today = dt.datetime.now(dt.timezone.utc).date()
                    billing_check = f"GET {paygo.route} for one day"
                    for _record in self.get_paygo_usage(from_date=today - dt.timedelta(days=1), to_date=today):
                        pass
            except CloudflareAPIError as error:
                if error.status == 403:
                    fix = (
                        "give the user a role with billing access (Administrator or Billing) on that account, or "
                        "use an API token with Account > Billing > Read"
                        if settings.auth_scheme == "global_key"
                        else "edit the token (My Profile > API Tokens, or Manage Account > Account API Tokens) and "
                        f"add the permission Account > Billing > Read for account {account}"
                    )
                    return False, self.redact(
                        f"Billing Read check failed: {credentials}, but {kind} lacks Billing Read on account "
                        f"{account} ({billing_check}: {answer(error)}). Every billing task would fail with 403. "
                        f"Fix: {fix}"
                    )
                if error.status == 404 or 7003 in error.codes:
                    return False, self.redact(
                        f"Billing Read check failed: Cloudflare has no route for {billing_check} on account "
                        f"{account} ({answer(error)}; 7003 means 'No route for the URI'): the PayGo path "
                        f"'{settings.paygo_path}' (extra.paygo_path) is not served to this account, or the "
                        "account id is wrong; Billing Read could not be confirmed. Fix: check extra.account_id, "
                        f"or set extra.paygo_path to another of {', '.join(PAYGO_PATHS)}"
                    )
                raise
            return True, self.redact(
                f"All checks passed: credentials: {credentials}; account: {account} (extra.account_id); "
                f"Billing Read: {billing_check} (extra.paygo_path {settings.paygo_path}) answered"
            )
        except (CloudflareAPIError, CloudflareInputError, httpx.HTTPError) as error:
            return False, self.redact(f"{step} check failed: the check could not complete ({answer(error)})")

    @staticmethod
    def _test_connection_answer(error: Exception) -> str:
        """What Cloudflare answered, for :meth:`test_connection`'s messages (redact the result)."""
        if not isinstance(error, CloudflareAPIError) or error.status is None:
            return str(error)
        codes: list[Any] = [*error.codes, *[""] * (len(error.messages) - len(error.codes))]
        messages = [*error.messages, *[""] * (len(error.codes) - len(error.messages))]
        errors = "; ".join(f"{code} {message}".strip() for code, message in zip(codes, messages, strict=True))
        return f"HTTP {error.status}" + (f", Cloudflare errors [{errors}]" if errors else "")

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

    def redact(self, text: str) -> str:
        """``text`` with every credential of the connection replaced by ``***``."""
        settings = self._settings
        for secret in settings.secrets if settings else ():
            if secret:
                text = text.replace(secret, "***")
        return text

    def _conversation(self, call: _Call) -> Generator[_Send | _Sleep, _Body | BaseException | None, _Body]:
        """Decide, outcome by outcome, whether to retry, wait, fail or return; shared by both drivers."""
        retry = (self._settings or self.settings).retry
        attempt = 0
        while True:
            outcome = yield _Send(call)
            retry_after: float | None = None
            if isinstance(outcome, _Body):
                try:
                    return self._accept(outcome, call)
                except _Retryable as retryable:
                    error, retry_after = retryable.error, retryable.retry_after
            else:
                error = CloudflareServerError(
                    f"Network error talking to Cloudflare ({type(outcome).__name__}: {self.redact(str(outcome))[:200]})",
                    endpoint=call.endpoint,
                )
            if attempt >= retry.max_retries:
                raise error
            delay = retry.delay(attempt, retry_after)
            attempt += 1
            log.warning(
                "Cloudflare %s: %s; retry %d of %d in %.1f s",
                call.endpoint,
                error.summary if error.status is None else f"HTTP {error.status}",
                attempt,
                retry.max_retries,
                delay,
            )
            yield _Sleep(delay)

    def _accept(self, body: _Body, call: _Call) -> _Body:
        status = body.status
        if 200 <= status < 300:
            if call.streams_records and body.size > _PARSE_WHOLE_LIMIT:
                return body
            body.spool.seek(0)
            try:
                envelope = json.load(body.spool)
            except (ValueError, UnicodeDecodeError):
                raise _Retryable(
                    MalformedBodyError("The response body is not valid JSON", status=status, endpoint=call.endpoint),
                    None,
                )
            body.result = check_envelope(envelope, status, call.endpoint)
            body.parsed = True
            return body
        envelope = None
        if body.size <= _PARSE_WHOLE_LIMIT:
            body.spool.seek(0)
            try:
                envelope = json.load(body.spool)
            except (ValueError, UnicodeDecodeError):
                envelope = None
        if 300 <= status < 400:
            raise CloudflareRequestError(
                "Cloudflare answered with a redirect, which is never followed (credentials stay on the configured "
                "host); set the connection's host to the API's final URL",
                status=status,
                endpoint=call.endpoint,
            )
        error = classify_error(status, envelope, call.endpoint)
        if error.retryable:  # 408, 409, 429, 5xx: the one rule of exceptions.retryable_status
            raise _Retryable(error, parse_retry_after(body.retry_after))
        if error.status == 404 and 7003 in error.codes and "/accounts/{account_id}/" in call.endpoint:
            error.summary = (
                f"Cloudflare has no route {call.endpoint} (code 7003): the endpoint moved or is not enabled "
                "for this account"
            )
            error.args = (error._render(),)
        raise error

    def _run(self, call: _Call) -> _Body:
        """The sync driver of :meth:`_conversation`."""
        conversation = self._conversation(call)
        action = next(conversation)
        while True:
            try:
                if isinstance(action, _Sleep):
                    time.sleep(action.seconds)
                    action = conversation.send(None)
                else:
                    action = conversation.send(self._send(action.call))
            except StopIteration as finished:
                return finished.value  # type: ignore[no-any-return]

    def _records(self, call: _Call) -> Iterator[dict[str, Any]]:
        return _iterate_body(self._run(call), call)

    def _json(self, call: _Call) -> Any:
        body = self._run(call)
        body.spool.close()
        return body.result

    def _send(self, call: _Call) -> _Body | BaseException:
        client = self.get_conn()
        spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_MEMORY)  # noqa: SIM115 - handed to the caller
        try:
            with client.stream("GET", call.path, params=list(call.params)) as response:
                size = 0
                for chunk in response.iter_bytes():
                    spool.write(chunk)
                    size += len(chunk)
                return _Body(response.status_code, response.headers.get("Retry-After"), spool, size)
        except httpx.TransportError as error:
            spool.close()
            return error

    async def _arun(self, call: _Call) -> _Body:
        settings = await self._asettings()
        conversation = self._conversation(call)
        async with httpx.AsyncClient(
            base_url=settings.base_url,
            headers=self._headers(settings),
            timeout=httpx.Timeout(settings.timeout, connect=min(settings.timeout, 15.0)),
            verify=settings.verify,
            follow_redirects=False,
            transport=self._async_transport,
        ) as client:
            action = next(conversation)
            while True:
                try:
                    if isinstance(action, _Sleep):
                        await asyncio.sleep(action.seconds)
                        action = conversation.send(None)
                    else:
                        action = conversation.send(await self._asend(client, action.call))
                except StopIteration as finished:
                    return finished.value  # type: ignore[no-any-return]

    async def _asend(self, client: httpx.AsyncClient, call: _Call) -> _Body | BaseException:
        spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_MEMORY)  # noqa: SIM115 - handed to the caller
        try:
            async with client.stream("GET", call.path, params=list(call.params)) as response:
                size = 0
                async for chunk in response.aiter_bytes():
                    spool.write(chunk)
                    size += len(chunk)
                return _Body(response.status_code, response.headers.get("Retry-After"), spool, size)
        except httpx.TransportError as error:
            spool.close()
            return error

    async def _arecords(self, call: _Call) -> Iterator[dict[str, Any]]:
        return _iterate_body(await self._arun(call), call)


def _as_list(result: Any, endpoint: str) -> list[dict[str, Any]]:
    if result is None:
        return []
    if not isinstance(result, list):
        raise MalformedBodyError("The envelope's result is not a list", status=200, endpoint=endpoint)
    return result


def _iterate_body(body: _Body, call: _Call) -> Iterator[dict[str, Any]]:
    """Records of an accepted body: the parsed list, or a stream over the spooled bytes."""
    if body.parsed:
        body.spool.close()
        return iter(_as_list(body.result, call.endpoint))

    def stream() -> Iterator[dict[str, Any]]:
        try:
            body.spool.seek(0)
            yield from iter_envelope_records(body.spool, body.status, call.endpoint)
        finally:
            body.spool.close()

    return stream()


__all__ = [
    "DEFAULT_BASE_URL",
    "CloudflareHook",
    "ConnectionSettings",
    "RetrySettings",
    "parse_retry_after",
]
