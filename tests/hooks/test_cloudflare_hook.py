"""CloudflareHook against httpx.MockTransport: auth, retries, envelope, validation, sync and async."""

from __future__ import annotations

import asyncio
import email.utils
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from airflow_provider_cfbilling import __version__
from airflow_provider_cfbilling.exceptions import (
    CloudflareAPIError,
    CloudflareAuthError,
    CloudflareInputError,
    CloudflareNotFoundError,
    CloudflarePermissionError,
    CloudflareRateLimitError,
    CloudflareServerError,
)
from airflow_provider_cfbilling.hooks import settings as settings_module
from airflow_provider_cfbilling.hooks import transport as transport_module
from airflow_provider_cfbilling.hooks.cloudflare import CloudflareHook, RetrySettings, parse_retry_after

ACCOUNT = "0123456789abcdef0123456789abcdef"
TOKEN = "cfTOKEN-abcdefghijklmnopqrstuvwxyz0123456"
EMAIL = "finops@example.com"
GLOBAL_KEY = "0123456789abcdef0123456789abcdef01234"
RECORD = {"ChargePeriodStart": "2025-05-01T00:00:00Z", "x_BillableMetricId": "workers_standard_requests"}


def envelope(result: Any = None, success: bool = True, errors: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"success": success, "errors": errors or [], "messages": [], "result": result}


def set_connection(monkeypatch: pytest.MonkeyPatch, conn_id: str = "cloudflare_default", **fields: Any) -> None:
    connection = {"conn_type": "cloudflare", "password": TOKEN, "extra": {"account_id": ACCOUNT}}
    connection.update(fields)
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(connection))


class Recorder:
    """A MockTransport handler that plays scripted responses and records every request."""

    def __init__(self, *responses: httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]) -> None:
        self.responses = list(responses)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        item = self.responses.pop(0) if len(self.responses) > 1 else self.responses[0]
        if isinstance(item, Exception):
            raise item
        if callable(item) and not isinstance(item, httpx.Response):
            return item(request)
        return httpx.Response(item.status_code, headers=item.headers, content=item.content)


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record the hook's sleeps instead of sleeping (sync and async drivers)."""
    recorded: list[float] = []

    async def fake_async_sleep(seconds: float) -> None:
        recorded.append(seconds)

    monkeypatch.setattr(transport_module.time, "sleep", recorded.append)
    monkeypatch.setattr(transport_module.asyncio, "sleep", fake_async_sleep)
    return recorded


@pytest.fixture(autouse=True)
def default_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    set_connection(monkeypatch)


def make_hook(recorder: Recorder, **kwargs: Any) -> CloudflareHook:
    transport = httpx.MockTransport(recorder)
    return CloudflareHook(transport=transport, async_transport=transport, **kwargs)


def ok(result: Any = None, **kwargs: Any) -> httpx.Response:
    return httpx.Response(200, json=envelope([RECORD] if result is None else result), **kwargs)


def failure(status: int, code: int, message: str, **kwargs: Any) -> httpx.Response:
    return httpx.Response(status, json=envelope(None, False, [{"code": code, "message": message}]), **kwargs)


# ---------------------------------------------------------------- auth, base URL, headers


def test_api_token_is_sent_as_bearer_with_user_agent():
    recorder = Recorder(ok())
    records = list(make_hook(recorder).get_v2_usage(from_date="2025-05-01", to_date="2025-05-02"))
    assert records == [RECORD]
    request = recorder.requests[0]
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert "X-Auth-Key" not in request.headers
    assert request.headers["User-Agent"].startswith(f"airflow-provider-cfbilling/{__version__}")
    assert str(request.url) == (
        f"https://api.cloudflare.com/client/v4/accounts/{ACCOUNT}/billable/usage?from=2025-05-01&to=2025-05-02"
    )


def test_global_key_is_sent_as_email_and_key(monkeypatch):
    set_connection(monkeypatch, login=EMAIL, password=GLOBAL_KEY)
    recorder = Recorder(ok())
    list(make_hook(recorder).get_v2_usage())
    headers = recorder.requests[0].headers
    assert headers["X-Auth-Email"] == EMAIL
    assert headers["X-Auth-Key"] == GLOBAL_KEY
    assert "Authorization" not in headers


def test_base_url_from_connection_host(monkeypatch):
    set_connection(monkeypatch, host="http://127.0.0.1:8123/client/v4")
    recorder = Recorder(ok())
    list(make_hook(recorder).get_v2_usage())
    assert str(recorder.requests[0].url) == f"http://127.0.0.1:8123/client/v4/accounts/{ACCOUNT}/billable/usage"


def test_connection_from_uri(monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_CLOUDFLARE_URI", f"cloudflare://:{TOKEN}@127.0.0.1:8124/client%2Fv4?account_id={ACCOUNT}"
    )
    recorder = Recorder(ok({"id": "profile"}))
    hook = CloudflareHook("cloudflare_uri", transport=httpx.MockTransport(recorder))
    assert hook.get_billing_profile() == {"id": "profile"}
    assert str(recorder.requests[0].url) == f"http://127.0.0.1:8124/client/v4/accounts/{ACCOUNT}/billing/profile"
    assert recorder.requests[0].headers["Authorization"] == f"Bearer {TOKEN}"


def test_plain_http_to_a_remote_host_is_refused_unless_opted_out(monkeypatch):
    set_connection(monkeypatch, host="http://billing-proxy.internal/client/v4")
    recorder = Recorder(ok())
    with pytest.raises(CloudflareInputError, match="unencrypted"):
        list(make_hook(recorder).get_v2_usage())
    assert recorder.requests == []
    set_connection(
        monkeypatch,
        host="http://billing-proxy.internal/client/v4",
        extra={"account_id": ACCOUNT, "allow_insecure_http": True},
    )
    list(make_hook(recorder).get_v2_usage())
    assert recorder.requests[0].url.host == "billing-proxy.internal"


def test_tls_verification_is_on_by_default():
    assert CloudflareHook().settings.verify is True


def test_redirects_are_not_followed():
    recorder = Recorder(httpx.Response(302, headers={"Location": "https://elsewhere.example/steal"}))
    with pytest.raises(CloudflareAPIError, match="redirect"):
        list(make_hook(recorder).get_v2_usage())
    assert len(recorder.requests) == 1


def test_timeouts_and_retries_come_from_the_extra_and_arguments_override(monkeypatch):
    set_connection(monkeypatch, extra={"account_id": ACCOUNT, "timeout": "12", "max_retries": 2, "verify": "false"})
    settings = CloudflareHook().settings
    assert (settings.timeout, settings.retry.max_retries, settings.verify) == (12.0, 2, False)
    settings = CloudflareHook(timeout=3, max_retries=5).settings
    assert (settings.timeout, settings.retry.max_retries) == (3.0, 5)
    assert settings.account_id == ACCOUNT


# ---------------------------------------------------------------- retries


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504, 520])
def test_transient_statuses_are_retried(status, sleeps):
    recorder = Recorder(failure(status, 10000, "transient"), ok())
    assert list(make_hook(recorder).get_v2_usage()) == [RECORD]
    assert len(recorder.requests) == 2
    assert len(sleeps) == 1


@pytest.mark.parametrize(
    ("status", "code", "error_class"),
    [
        (400, 1183, CloudflareAPIError),
        (400, 6003, CloudflareAuthError),
        (401, 1000, CloudflareAuthError),
        (403, 9109, CloudflareAuthError),
        (403, 10000, CloudflarePermissionError),
        (404, 7003, CloudflareNotFoundError),
    ],
)
def test_permanent_statuses_fail_at_once(status, code, error_class, sleeps):
    recorder = Recorder(failure(status, code, "no"))
    with pytest.raises(error_class) as raised:
        list(make_hook(recorder).get_v2_usage())
    assert len(recorder.requests) == 1
    assert sleeps == []
    assert raised.value.status == status
    assert raised.value.codes == [code]
    assert raised.value.endpoint == "/accounts/{account_id}/billable/usage"
    assert f"{code}: no" in str(raised.value)


class SpoolTracker:
    """Every body spool the hook opens, to check that each one is closed."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.spools: list[Any] = []
        real = transport_module.tempfile.SpooledTemporaryFile

        def spool(*args: Any, **kwargs: Any) -> Any:
            self.spools.append(real(*args, **kwargs))
            return self.spools[-1]

        monkeypatch.setattr(transport_module.tempfile, "SpooledTemporaryFile", spool)

    @property
    def open(self) -> int:
        return sum(not spool.closed for spool in self.spools)


def test_every_answer_body_is_closed_retried_failed_or_read(monkeypatch, sleeps):
    """A body that is retried or raised is closed at once, not left to the garbage collector (a
    ResourceWarning, and an open temporary file for a body past the spool's memory size)."""
    tracker = SpoolTracker(monkeypatch)
    hook = make_hook(Recorder(failure(503, 10000, "busy"), ok()))
    assert list(hook.get_v2_usage()) == [RECORD]
    with pytest.raises(CloudflareAuthError):
        list(make_hook(Recorder(failure(403, 9109, "Invalid access token"))).get_v2_usage())
    with pytest.raises(CloudflareServerError):
        list(make_hook(Recorder(failure(502, 10000, "down")), max_retries=1).get_v2_usage())
    asyncio.run(make_hook(Recorder(failure(429, 971, "slow"), ok())).aget_v2_usage())

    assert len(tracker.spools) == 7
    assert tracker.open == 0


def test_error_chain_codes_are_collected():
    body = envelope(
        None,
        False,
        [
            {
                "code": 6003,
                "message": "Invalid request headers",
                "error_chain": [{"code": 6111, "message": "Invalid format"}],
            }
        ],
    )
    recorder = Recorder(httpx.Response(400, json=body))
    with pytest.raises(CloudflareAuthError) as raised:
        list(make_hook(recorder).get_v2_usage())
    assert raised.value.codes == [6003, 6111]


def test_unknown_route_error_names_the_endpoint():
    recorder = Recorder(failure(404, 7003, "No route for the URI"))
    with pytest.raises(CloudflareNotFoundError, match=r"/accounts/\{account_id\}/paygo-usage .*7003"):
        list(make_hook(recorder).get_paygo_usage(path="paygo-usage"))


def test_retry_after_seconds_is_honoured(sleeps):
    recorder = Recorder(failure(429, 971, "rate limited", headers={"Retry-After": "7"}), ok())
    list(make_hook(recorder).get_v2_usage())
    assert sleeps == [7.0]


def test_retry_after_http_date_is_honoured(sleeps):
    when = email.utils.format_datetime(
        __import__("datetime").datetime.fromtimestamp(time.time() + 30, tz=__import__("datetime").timezone.utc),
        usegmt=True,
    )
    recorder = Recorder(failure(429, 971, "rate limited", headers={"Retry-After": when}), ok())
    list(make_hook(recorder).get_v2_usage())
    assert len(sleeps) == 1
    assert 27 <= sleeps[0] <= 30


def test_retry_after_is_capped_by_the_ceiling(sleeps):
    recorder = Recorder(failure(429, 971, "blocked", headers={"Retry-After": "300"}), ok())
    list(make_hook(recorder).get_v2_usage())
    assert sleeps == [300.0]  # the default ceiling outlasts Cloudflare's 5-minute block
    sleeps.clear()
    recorder = Recorder(failure(429, 971, "blocked", headers={"Retry-After": "300"}), ok())
    list(make_hook(recorder, retry_after_max=20).get_v2_usage())
    assert sleeps == [20.0]


def test_backoff_is_exponential_capped_and_jittered(sleeps):
    recorder = Recorder(failure(503, 0, "down"))
    with pytest.raises(CloudflareServerError):
        list(make_hook(recorder, max_retries=6, backoff_base=1, backoff_max=8).get_v2_usage())
    assert len(recorder.requests) == 7
    ceilings = [1, 2, 4, 8, 8, 8]
    assert all(ceiling / 2 <= slept <= ceiling for slept, ceiling in zip(sleeps, ceilings, strict=True))


def test_rate_limit_past_the_budget_raises_rate_limit_error(sleeps):
    recorder = Recorder(failure(429, 971, "slow down", headers={"Retry-After": "1"}))
    with pytest.raises(CloudflareRateLimitError, match="429"):
        list(make_hook(recorder, max_retries=3).get_v2_usage())
    assert len(recorder.requests) == 4
    assert sleeps == [1.0, 1.0, 1.0]


@pytest.mark.parametrize(
    "error",
    [
        httpx.ConnectError("connection refused"),
        httpx.ReadTimeout("read timed out"),
        httpx.RemoteProtocolError("peer closed connection without sending complete message body"),
    ],
)
def test_network_errors_and_timeouts_are_retried(error, sleeps):
    recorder = Recorder(error, ok())
    assert list(make_hook(recorder).get_v2_usage()) == [RECORD]
    assert len(recorder.requests) == 2


def test_parse_retry_after_forms():
    assert parse_retry_after("12") == 12.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    now = time.time()
    date = email.utils.formatdate(now + 60, usegmt=True)
    assert 58 <= parse_retry_after(date, now=now) <= 60  # type: ignore[operator]
    assert RetrySettings().retry_after_max > 300


# ---------------------------------------------------------------- envelope


def test_http_200_with_success_false_is_an_error_and_not_retried(sleeps):
    recorder = Recorder(httpx.Response(200, json=envelope(None, False, [{"code": 1001, "message": "nope"}])))
    with pytest.raises(CloudflareAPIError, match="success: false") as raised:
        list(make_hook(recorder).get_v2_usage())
    assert raised.value.codes == [1001]
    assert len(recorder.requests) == 1


def test_a_body_that_is_not_json_is_retried_then_reported(sleeps):
    html = httpx.Response(200, content=b"<html>bad gateway</html>", headers={"Content-Type": "text/html"})
    recorder = Recorder(html, ok())
    assert list(make_hook(recorder).get_v2_usage()) == [RECORD]
    recorder = Recorder(html)
    with pytest.raises(CloudflareServerError, match="not valid JSON"):
        list(make_hook(recorder, max_retries=1).get_v2_usage())
    assert len(recorder.requests) == 2


def large_body(records: int, success_first: bool = True, success: bool = True) -> bytes:
    items = ",".join(json.dumps({**RECORD, "ConsumedQuantity": i, "Pad": "x" * 200}) for i in range(records))
    status = f'"success": {"true" if success else "false"}'
    errors = '"errors": [{"code": 1002, "message": "late failure"}]' if not success else '"errors": []'
    if success_first:
        return f'{{{status}, {errors}, "messages": [], "result": [{items}]}}'.encode()
    return f'{{"result": [{items}], {errors}, "messages": [], {status}}}'.encode()


def test_large_bodies_stream_records_in_order():
    recorder = Recorder(httpx.Response(200, content=large_body(6000, success_first=False)))
    records = make_hook(recorder).get_v2_usage()
    assert [record["ConsumedQuantity"] for record in records] == list(range(6000))


def test_large_body_with_late_success_false_raises_after_the_records():
    recorder = Recorder(httpx.Response(200, content=large_body(6000, success_first=False, success=False)))
    records = make_hook(recorder).get_v2_usage()
    seen = 0
    with pytest.raises(CloudflareAPIError, match="1002: late failure"):
        for _ in records:
            seen += 1
    assert seen == 6000


def test_large_body_cut_short_is_malformed():
    body = large_body(6000)[:-5000]
    recorder = Recorder(httpx.Response(200, content=body))
    with pytest.raises(CloudflareServerError, match="not valid JSON"):
        list(make_hook(recorder).get_v2_usage())


def test_small_bodies_are_parsed_once(monkeypatch):
    calls = []
    real_load = json.load
    monkeypatch.setattr(transport_module.json, "load", lambda *a, **k: calls.append(1) or real_load(*a, **k))
    recorder = Recorder(ok())
    assert list(make_hook(recorder).get_v2_usage()) == [RECORD]
    assert calls == [1]


# ---------------------------------------------------------------- validation: nothing is sent


@pytest.mark.parametrize(
    ("kwargs", "parameter", "fragment"),
    [
        ({"account_id": "not-an-account"}, "account_id", "not a Cloudflare account tag"),
        ({"account_id": "0123456789abcdef0123456789abcdeg"}, "account_id", "not a Cloudflare account tag"),
        ({"from_date": "2025-01-01T00:00:00Z", "to_date": "2025-01-02"}, "from_date", "timestamp"),
        ({"from_date": "2025-02-30", "to_date": "2025-03-02"}, "from_date", "not a real calendar date"),
        ({"from_date": "2025-01-01"}, "to_date", "together"),
        ({"to_date": "2025-01-01"}, "from_date", "together"),
        ({"from_date": "2025-01-10", "to_date": "2025-01-01"}, "to_date", "before"),
        ({"from_date": "2025-01-01", "to_date": "2025-02-02"}, "to_date", "32 days"),
        # 31 days apart covers 32 days if the server reads `to` inclusively: refused too.
        ({"from_date": "2025-05-01", "to_date": "2025-06-01"}, "to_date", "covers 32 days"),
        (
            {"from_date": "2025-01-01", "to_date": "2025-01-02", "metric": "two words"},
            "metric",
            "not a billable metric",
        ),
    ],
)
def test_bad_input_is_rejected_before_any_request(kwargs, parameter, fragment):
    recorder = Recorder(ok())
    with pytest.raises(CloudflareInputError, match=fragment) as raised:
        make_hook(recorder).get_v2_usage(**kwargs)
    assert raised.value.parameter == parameter
    assert raised.value.fix
    assert recorder.requests == []


def test_datetime_objects_are_refused_as_dates():
    import datetime as dt

    recorder = Recorder(ok())
    with pytest.raises(CloudflareInputError, match="timestamp"):
        make_hook(recorder).get_paygo_usage(from_date=dt.datetime(2025, 1, 1, 5), to_date=dt.date(2025, 1, 2))
    assert recorder.requests == []


@pytest.mark.parametrize(
    ("connection", "fragment"),
    [
        ({"password": None}, "no API token"),
        ({"password": f"Bearer {TOKEN}"}, "Bearer"),
        ({"login": "not-an-email", "password": GLOBAL_KEY}, "not an email"),
        ({"extra": {"account_id": "xyz"}}, "not a Cloudflare account tag"),
        ({"extra": {"account_id": ACCOUNT, "timeout": "soon"}}, "timeout"),
        ({"extra": {"account_id": ACCOUNT, "max_retries": -1}}, "max_retries"),
        ({"extra": {"account_id": ACCOUNT, "paygo_path": "usage"}}, "paygo_path"),
        ({"host": "ftp://example.com"}, "not an http"),
    ],
)
def test_bad_connection_fields_are_rejected_before_any_request(monkeypatch, connection, fragment):
    set_connection(monkeypatch, **connection)
    recorder = Recorder(ok())
    with pytest.raises(CloudflareInputError, match=fragment):
        make_hook(recorder).get_v2_usage()
    assert recorder.requests == []


def test_missing_account_everywhere_says_where_to_set_it(monkeypatch):
    set_connection(monkeypatch, extra={})
    recorder = Recorder(ok())
    with pytest.raises(CloudflareInputError, match=r"extra\.account_id"):
        make_hook(recorder).get_billing_profile()
    assert recorder.requests == []


# ---------------------------------------------------------------- secrets


def test_exceptions_never_contain_credentials(monkeypatch, sleeps):
    set_connection(monkeypatch, login=EMAIL, password=GLOBAL_KEY)
    recorder = Recorder(httpx.ConnectError(f"failed for {GLOBAL_KEY} / {EMAIL}"))
    with pytest.raises(CloudflareServerError) as raised:
        list(make_hook(recorder, max_retries=1).get_v2_usage())
    text = str(raised.value) + repr(raised.value.args)
    assert GLOBAL_KEY not in text
    assert EMAIL not in text
    assert "***" in text


def test_settings_repr_hides_credentials():
    settings = CloudflareHook().settings
    assert TOKEN not in repr(settings)


# ---------------------------------------------------------------- endpoints


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("billable-usage", "/billable-usage"),
        ("paygo-usage", "/paygo-usage"),
        ("billing/usage/paygo", "/billing/usage/paygo"),
    ],
)
def test_each_paygo_path(path, expected):
    recorder = Recorder(ok())
    list(make_hook(recorder).get_paygo_usage(from_date="2025-05-01", to_date="2025-05-02", path=path))
    url = recorder.requests[0].url
    assert url.path == f"/client/v4/accounts/{ACCOUNT}{expected}"
    assert dict(url.params) == {"from": "2025-05-01", "to": "2025-05-02"}


def test_paygo_path_defaults_to_the_connection_choice(monkeypatch):
    set_connection(monkeypatch, extra={"account_id": ACCOUNT, "paygo_path": "paygo-usage"})
    recorder = Recorder(ok())
    list(make_hook(recorder).get_paygo_usage())
    assert recorder.requests[0].url.path.endswith("/paygo-usage")


def test_paygo_info_endpoints():
    info = {"covered": True, "subscriptions": [{"billing_cycle_anchor_timestamp": "2025-01-15T00:00:00Z"}]}
    recorder = Recorder(ok(info))
    hook = make_hook(recorder)
    assert hook.get_paygo_usage_info(path="billable-usage") == info
    assert hook.get_paygo_usage_info(path="paygo-usage") == info
    assert [r.url.path.rsplit(ACCOUNT, 1)[1] for r in recorder.requests] == [
        "/billable-usage/info",
        "/paygo-usage-info",
    ]
    with pytest.raises(CloudflareInputError, match="no info endpoint"):
        hook.get_paygo_usage_info(path="billing/usage/paygo")


def test_v2_metric_is_sent_both_ways_by_default_and_configurable(monkeypatch):
    recorder = Recorder(ok())
    list(make_hook(recorder).get_v2_usage(from_date="2025-05-01", to_date="2025-05-02", metric="r2_storage"))
    assert recorder.requests[0].url.params.multi_items() == [
        ("from", "2025-05-01"),
        ("to", "2025-05-02"),
        ("metric", "r2_storage"),
        ("metric_id", "r2_storage"),
    ]
    set_connection(monkeypatch, extra={"account_id": ACCOUNT, "v2_metric_param": "metric_id"})
    recorder = Recorder(ok())
    list(make_hook(recorder).get_v2_usage(metric="r2_storage"))
    assert recorder.requests[0].url.params.multi_items() == [("metric_id", "r2_storage")]


def test_billing_profile():
    recorder = Recorder(ok({"id": "abc", "card_number": "4242"}))
    assert make_hook(recorder).get_billing_profile()["id"] == "abc"
    assert recorder.requests[0].url.path == f"/client/v4/accounts/{ACCOUNT}/billing/profile"


def test_the_client_is_reused():
    recorder = Recorder(ok())
    hook = make_hook(recorder)
    list(hook.get_v2_usage())
    client = hook.get_conn()
    list(hook.get_v2_usage())
    assert hook.get_conn() is client


# ---------------------------------------------------------------- test_connection
# The full matrix (token kinds, missing account, Billing Read, secrets) runs against the emulator in
# test_connection_check.py; these pin the exact requests and an answer the emulator does not give.

INFO_PATH = f"/client/v4/accounts/{ACCOUNT}/billable-usage/info"


def verify_handler(
    user_status: int, account_status: int, token_status: str = "active", billing: tuple[int, int] | None = None
):
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/user/tokens/verify"):
            if user_status != 200:
                return failure(user_status, 1000, "Invalid API Token")
            return ok({"id": "t", "status": token_status})
        if request.url.path.endswith(f"/accounts/{ACCOUNT}/tokens/verify"):
            if account_status != 200:
                return failure(account_status, 1000, "Invalid API Token")
            return ok({"id": "t", "status": token_status})
        if request.url.path == INFO_PATH:
            if billing is not None:
                return failure(billing[0], billing[1], "Unauthorized to access requested resource")
            return ok({"covered": True, "subscriptions": []})
        if request.url.path.endswith(f"/accounts/{ACCOUNT}"):
            return ok({"id": ACCOUNT, "name": "Acme"})
        return failure(404, 7003, "No route for the URI")

    return handle


def test_test_connection_user_token():
    recorder = Recorder(verify_handler(200, 401))
    success, message = make_hook(recorder).test_connection()
    assert success, message
    assert message.startswith("All checks passed: credentials: user-owned API token is active")
    assert [r.url.path for r in recorder.requests] == ["/client/v4/user/tokens/verify", INFO_PATH]
    assert all(r.headers["Authorization"] == f"Bearer {TOKEN}" for r in recorder.requests)


def test_test_connection_account_token():
    recorder = Recorder(verify_handler(401, 200))
    success, message = make_hook(recorder).test_connection()
    assert success, message
    assert f"account-owned API token of account {ACCOUNT} is active" in message
    assert [r.url.path for r in recorder.requests] == [
        "/client/v4/user/tokens/verify",
        f"/client/v4/accounts/{ACCOUNT}/tokens/verify",
        INFO_PATH,
    ]


def test_test_connection_disabled_and_invalid_tokens():
    success, message = make_hook(Recorder(verify_handler(200, 401, "disabled"))).test_connection()
    assert not success
    assert message.startswith(
        "Credentials check failed: the user-owned API token is disabled (GET /user/tokens/verify)"
    )
    success, message = make_hook(Recorder(verify_handler(401, 401))).test_connection()
    assert not success
    assert "1000 Invalid API Token" in message
    assert TOKEN not in message


def test_test_connection_global_key(monkeypatch):
    set_connection(monkeypatch, login=EMAIL, password=GLOBAL_KEY)
    recorder = Recorder(verify_handler(401, 401))
    success, message = make_hook(recorder).test_connection()
    assert success, message
    assert "global API key accepted (GET /accounts/{account_id}, account name Acme)" in message
    assert [r.url.path for r in recorder.requests] == [f"/client/v4/accounts/{ACCOUNT}", INFO_PATH]
    assert EMAIL not in message and GLOBAL_KEY not in message


def test_test_connection_403_9109_on_billing_is_a_missing_billing_read():
    """Cloudflare answers a token that may not read an account's billing with 403 9109, too."""
    success, message = make_hook(Recorder(verify_handler(200, 401, billing=(403, 9109)))).test_connection()
    assert not success
    assert f"the token lacks Billing Read on account {ACCOUNT}" in message
    assert "9109" in message


# ---------------------------------------------------------------- async


def test_async_path_shares_retries_and_envelope(sleeps):
    recorder = Recorder(failure(429, 971, "slow", headers={"Retry-After": "3"}), httpx.ReadTimeout("t"), ok())
    hook = make_hook(recorder)
    records = asyncio.run(hook.aget_v2_usage(from_date="2025-05-01", to_date="2025-05-02", metric="m"))
    assert list(records) == [RECORD]
    assert len(recorder.requests) == 3
    assert sleeps[0] == 3.0
    assert recorder.requests[0].headers["Authorization"] == f"Bearer {TOKEN}"


def test_async_path_fails_fast_on_auth_errors(sleeps):
    recorder = Recorder(failure(403, 9109, "Invalid access token"))
    with pytest.raises(CloudflareAuthError):
        asyncio.run(make_hook(recorder).aget_paygo_usage(path="paygo-usage"))
    assert len(recorder.requests) == 1
    assert sleeps == []


def test_async_path_validates_before_sending():
    recorder = Recorder(ok())
    with pytest.raises(CloudflareInputError):
        asyncio.run(make_hook(recorder).aget_v2_usage(from_date="2025-01-01"))
    assert recorder.requests == []


def test_async_success_false_on_200():
    recorder = Recorder(httpx.Response(200, json=envelope(None, False, [{"code": 1001, "message": "nope"}])))
    with pytest.raises(CloudflareAPIError, match="1001"):
        asyncio.run(make_hook(recorder).aget_v2_usage())


class _NotDefined(Exception):
    """What some Airflow versions (3.0) raise for an environment connection they could not load."""


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ('{"conn_type": "cloudflare", "password": "hunter22-token", "extra": ["account_id"]', "is not valid JSON"),
        ('{"conn_type": "cloudflare", "password": "hunter22-token", "extra": ["account_id"]}', "is not a JSON object"),
        ('{"conn_type": "cloudflare", "password": "hunter22-token", "extra": "{account_id: 1}"}', "is not valid JSON"),
    ],
)
def test_an_unreadable_environment_connection_is_named_when_airflow_hides_it(monkeypatch, raw, problem):
    def not_defined(cls: Any, conn_id: str) -> Any:
        raise _NotDefined(f"The conn_id `{conn_id}` isn't defined")

    monkeypatch.setattr(CloudflareHook, "get_connection", classmethod(not_defined))
    monkeypatch.setenv("AIRFLOW_CONN_CLOUDFLARE_DEFAULT", raw)
    with pytest.raises(CloudflareInputError) as raised:
        _ = CloudflareHook().settings
    assert problem in raised.value.problem
    assert "cloudflare_default" in raised.value.parameter
    assert "hunter22" not in str(raised.value)
    # The async lookup explains it the same way.
    monkeypatch.setattr(settings_module, "aget_connection", lambda conn_id: _raise_async(_NotDefined(conn_id)))
    with pytest.raises(CloudflareInputError):
        asyncio.run(CloudflareHook()._asettings())


async def _raise_async(error: Exception) -> Any:
    raise error


def test_a_missing_connection_keeps_airflows_own_error(monkeypatch):
    def not_defined(cls: Any, conn_id: str) -> Any:
        raise _NotDefined(f"The conn_id `{conn_id}` isn't defined")

    monkeypatch.setattr(CloudflareHook, "get_connection", classmethod(not_defined))
    monkeypatch.delenv("AIRFLOW_CONN_CLOUDFLARE_DEFAULT", raising=False)
    with pytest.raises(_NotDefined, match="isn't defined"):
        _ = CloudflareHook().settings
    # A readable variable: the lookup failed for another reason, which is not hidden either.
    monkeypatch.setenv("AIRFLOW_CONN_CLOUDFLARE_DEFAULT", '{"conn_type": "cloudflare", "extra": {"account_id": "a"}}')
    with pytest.raises(_NotDefined):
        _ = CloudflareHook().settings
