"""CloudflareUsageAvailableTrigger: its serialized form, and its polling against the emulator over loopback."""

from __future__ import annotations

import asyncio
import datetime as dt
import importlib
import json
import threading
import time
from typing import Any

import pytest
from harness import advance_clock_after

from airflow_provider_cfbilling.availability import (
    count_records_on_day,
    error_event_payload,
    is_permanent,
    is_transient,
)
from airflow_provider_cfbilling.emulator import DEFAULT_ACCOUNT_ID, DEFAULT_TOKEN, NO_BILLING_TOKEN
from airflow_provider_cfbilling.exceptions import (
    CloudflareAPIError,
    CloudflareAuthError,
    CloudflareInputError,
    CloudflareNotFoundError,
    CloudflarePermissionError,
    CloudflareRateLimitError,
    CloudflareServerError,
)
from airflow_provider_cfbilling.hooks.envelope import MalformedBodyError
from airflow_provider_cfbilling.triggers.billing import CloudflareUsageAvailableTrigger

CLASSPATH = "airflow_provider_cfbilling.triggers.billing.CloudflareUsageAvailableTrigger"
# The emulator fixture's clock is 2025-06-20 12:00 UTC and a day appears 6 h after it ends:
AVAILABLE_DAY = "2025-06-18"
PENDING_DAY = "2025-06-20"  # appears at 2025-06-21 06:00, i.e. after advancing the clock by 18 h
TO_PENDING_DAY = 18 * 3600


def import_string(classpath: str) -> Any:
    """What the triggerer does with a serialized classpath (Airflow's helper moves between versions)."""
    module, _, name = classpath.rpartition(".")
    return getattr(importlib.import_module(module), name)


def make_trigger(**overrides: Any) -> CloudflareUsageAvailableTrigger:
    kwargs: dict[str, Any] = {
        "account_id": DEFAULT_ACCOUNT_ID,
        "day": AVAILABLE_DAY,
        "end_time": time.time() + 20,
        "poll_interval": 0.2,
    }
    kwargs.update(overrides)
    return CloudflareUsageAvailableTrigger(**kwargs)


def first_event(trigger: CloudflareUsageAvailableTrigger, limit: float = 20.0) -> dict[str, Any]:
    """Run the trigger the way the triggerer does, until its first event (bounded by ``limit``)."""

    async def first() -> Any:
        events = trigger.run()
        try:
            return await events.__anext__()
        finally:
            await events.aclose()

    event = asyncio.run(asyncio.wait_for(first(), limit))
    # What reaches the task must be plain JSON.
    assert json.loads(json.dumps(event.payload)) == event.payload
    return event.payload


def usage_requests(emulator: Any, route: str = "v2") -> list[dict[str, Any]]:
    return [entry for entry in emulator.request_log if entry["route"] == route]


# ---------------------------------------------------------------------------------------------- serialization


def test_serialize_round_trip_is_exact() -> None:
    trigger = CloudflareUsageAvailableTrigger(
        account_id=DEFAULT_ACCOUNT_ID,
        day="2025-06-18",
        end_time=1750000000.5,
        source="paygo",
        paygo_path="billable-usage",
        from_date="2025-05-26",
        min_records=5,
        cloudflare_conn_id="cf_prod",
        poll_interval=300,
        retry_settings={"max_retries": 3, "backoff_base": 2.0, "retry_after_max": 120.0, "timeout": 30.0},
        first_poll_delay=300,
    )
    classpath, kwargs = trigger.serialize()
    assert classpath == CLASSPATH
    assert kwargs == {
        "account_id": DEFAULT_ACCOUNT_ID,
        "day": "2025-06-18",
        "end_time": 1750000000.5,
        "source": "paygo",
        "metric": None,
        "paygo_path": "billable-usage",
        "organization_id": None,
        "from_date": "2025-05-26",
        "min_records": 5,
        "cloudflare_conn_id": "cf_prod",
        "poll_interval": 300.0,
        "retry_settings": {"max_retries": 3, "backoff_base": 2.0, "retry_after_max": 120.0, "timeout": 30.0},
        "first_poll_delay": 300.0,
    }
    assert json.loads(json.dumps(kwargs)) == kwargs
    rebuilt = import_string(classpath)(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)


def test_serialize_defaults_and_v2_metric() -> None:
    _classpath, kwargs = CloudflareUsageAvailableTrigger(
        account_id=DEFAULT_ACCOUNT_ID, day="2025-06-18", end_time=10, metric="r2_storage"
    ).serialize()
    assert kwargs == {
        "account_id": DEFAULT_ACCOUNT_ID,
        "day": "2025-06-18",
        "end_time": 10.0,
        "source": "v2",
        "metric": "r2_storage",
        "paygo_path": None,
        "organization_id": None,
        "from_date": "2025-06-18",
        "min_records": 1,
        "cloudflare_conn_id": "cloudflare_default",
        "poll_interval": 60.0,
        "retry_settings": {},
        "first_poll_delay": 0.0,
    }


def test_kwargs_serialized_before_first_poll_delay_existed_still_load() -> None:
    """A trigger row written by an earlier release (no ``first_poll_delay``) resumes, polling at once."""
    _classpath, kwargs = make_trigger().serialize()
    del kwargs["first_poll_delay"]
    assert import_string(CLASSPATH)(**kwargs).first_poll_delay == 0.0


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"source": "focus"}, "source"),
        ({"retry_settings": {"password": "x"}}, "retry_settings"),
        ({"first_poll_delay": -1}, "first_poll_delay"),
        ({"first_poll_delay": float("nan")}, "first_poll_delay"),
    ],
)
def test_bad_kwargs_are_refused(kwargs: dict[str, Any], parameter: str) -> None:
    with pytest.raises(CloudflareInputError) as caught:
        make_trigger(**kwargs)
    assert caught.value.parameter == parameter


# ---------------------------------------------------------------------------------------------- pure rules


def test_counting_keeps_only_the_day_and_the_metric() -> None:
    day = dt.date(2025, 6, 18)
    records = [
        {"ChargePeriodStart": "2025-06-18T00:00:00Z", "x_BillableMetricId": "a"},
        {"ChargePeriodStart": "2025-06-18T00:00:00+00:00", "x_BillableMetricId": "b"},
        {"ChargePeriodStart": "2025-06-19T00:00:00Z", "x_BillableMetricId": "a"},  # an inclusive `to`
        {"ChargePeriodStart": "2025-06-17T00:00:00Z", "x_BillableMetricId": "a"},  # a PayGo anchor range
        {"ChargePeriodStart": "2025-06-18T01:00:00+02:00", "x_BillableMetricId": "a"},  # 06-17 23:00 UTC
        {"x_BillableMetricId": "a"},
        {"ChargePeriodStart": "garbage", "x_BillableMetricId": "a"},
    ]
    assert count_records_on_day(records, day) == 2
    assert count_records_on_day(records, day, "a") == 1
    assert count_records_on_day(records, day, "c") == 0


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (CloudflareRateLimitError("x", status=429), True),
        (CloudflareServerError("x", status=503), True),
        (CloudflareServerError("network"), True),
        (MalformedBodyError("x", status=200), True),
        (CloudflareAPIError("success false", status=200, codes=[1001]), True),
        (CloudflareAPIError("conflict", status=409), True),
        (CloudflareAPIError("bad parameters", status=400, codes=[1183]), False),
        (CloudflareAuthError("x", status=401, codes=[1000]), False),
        (CloudflareAuthError("x", status=400, codes=[6003]), False),
        (CloudflarePermissionError("x", status=403, codes=[10000]), False),
        (CloudflareNotFoundError("x", status=404, codes=[7003]), False),
        (CloudflareAPIError("redirect", status=301), False),
        (CloudflareInputError("day", "bad", "fix"), False),
        (RuntimeError("bug"), False),
    ],
)
def test_which_errors_are_waited_out(error: Exception, transient: bool) -> None:
    assert is_transient(error) is transient
    # The trigger decides from the errors' own ``retryable``; what is not transient is permanent,
    # except an error that is not the provider's (a bug): neither waited out nor "permanent".
    assert is_permanent(error) is (not transient and not isinstance(error, RuntimeError))
    if isinstance(error, (CloudflareAPIError, CloudflareInputError)):
        assert error.retryable is transient


def test_error_event_payload_carries_whether_it_is_permanent() -> None:
    error = CloudflarePermissionError(
        "The credentials lack permission",
        status=403,
        codes=[10000],
        messages=["Authentication error for secret_value_123"],
        endpoint="/accounts/{account_id}/billable/usage",
    )
    payload = error_event_payload(
        error,
        day=AVAILABLE_DAY,
        account_id=DEFAULT_ACCOUNT_ID,
        redact=lambda text: text.replace("secret_value_123", "***"),
    )
    assert payload == {
        "status": "error",
        "message": "The credentials lack permission | endpoint /accounts/{account_id}/billable/usage | HTTP 403 | "
        "Cloudflare errors [10000: Authentication error for ***]",
        "http_status": 403,
        "codes": [10000],
        "error_type": "CloudflarePermissionError",
        "permanent": True,
        "summary": "The credentials lack permission",
        "messages": ["Authentication error for ***"],
        "endpoint": "/accounts/{account_id}/billable/usage",
        "day": AVAILABLE_DAY,
        "account_id": DEFAULT_ACCOUNT_ID,
    }
    bad_input = error_event_payload(CloudflareInputError("metric", "bad", "fix"), day=AVAILABLE_DAY, account_id="a")
    assert (bad_input["permanent"], bad_input["parameter"], bad_input["problem"], bad_input["fix"]) == (
        True,
        "metric",
        "bad",
        "fix",
    )
    assert error_event_payload(RuntimeError("bug"), day=AVAILABLE_DAY, account_id="a")["permanent"] is False


# ---------------------------------------------------------------------------------------------- against the emulator


def test_fires_once_the_day_appears_after_a_few_polls(emulator: Any, cloudflare_conn: Any) -> None:
    advance_clock_after(emulator, requests=3, seconds=TO_PENDING_DAY, limit=20)
    payload = first_event(make_trigger(day=PENDING_DAY))

    expected = len(emulator.expected_records(DEFAULT_ACCOUNT_ID, PENDING_DAY))
    assert expected > 0
    assert payload == {"status": "success", "records": expected, "day": PENDING_DAY, "account_id": DEFAULT_ACCOUNT_ID}
    requests = usage_requests(emulator)
    # Three empty answers, then the one that found the day; the narrowest request every time.
    assert [entry["status"] for entry in requests] == [200, 200, 200, 200]
    assert all(entry["query"] == {"from": [PENDING_DAY], "to": ["2025-06-21"]} for entry in requests)


def test_records_are_parsed_off_the_event_loop(emulator: Any, cloudflare_conn: Any, monkeypatch) -> None:
    """The triggerer's event loop is shared by every trigger: parsing a body happens in a worker thread."""
    from airflow_provider_cfbilling.triggers import billing as trigger_module

    threads: list[tuple[str, bool]] = []
    real = trigger_module.count_records_on_day

    def recording(records: Any, day: dt.date, metric: str | None = None) -> int:
        try:
            asyncio.get_running_loop()
            in_loop = True
        except RuntimeError:
            in_loop = False
        threads.append((threading.current_thread().name, in_loop))
        return real(records, day, metric)

    monkeypatch.setattr(trigger_module, "count_records_on_day", recording)
    payload = first_event(make_trigger())
    assert payload["status"] == "success" and payload["records"] > 0
    assert threads and all(not in_loop for _, in_loop in threads), threads
    assert threading.main_thread().name not in {name for name, _ in threads}


def test_min_records_and_metric_are_counted_on_the_day(emulator: Any, cloudflare_conn: Any) -> None:
    emulator.configure(ignore_metric_filter=True, to_inclusive=True)
    metric = "workers_standard_requests"
    expected = len(emulator.expected_records(DEFAULT_ACCOUNT_ID, AVAILABLE_DAY, metric=metric))
    assert 0 < expected < len(emulator.expected_records(DEFAULT_ACCOUNT_ID, AVAILABLE_DAY))

    payload = first_event(make_trigger(metric=metric, min_records=expected))
    assert payload["status"] == "success"
    assert payload["records"] == expected
    assert usage_requests(emulator)[0]["query"] == {
        "from": [AVAILABLE_DAY],
        "to": ["2025-06-19"],
        "metric": [metric],
        "metric_id": [metric],
    }


def test_times_out_at_end_time(emulator: Any, cloudflare_conn: Any) -> None:
    started = time.time()
    payload = first_event(make_trigger(day=PENDING_DAY, end_time=started + 1.0, poll_interval=0.3))
    elapsed = time.time() - started

    assert payload["status"] == "timeout"
    assert payload["records"] == 0
    assert payload["day"] == PENDING_DAY and payload["account_id"] == DEFAULT_ACCOUNT_ID
    assert "0 of 1 record(s)" in payload["message"]
    assert 1.0 <= elapsed < 2.0
    assert 3 <= len(usage_requests(emulator)) <= 5


def test_the_first_poll_waits_first_poll_delay(emulator: Any, cloudflare_conn: Any) -> None:
    """The sensor's own check came just before: the trigger asks one interval later, not at once."""
    started = time.monotonic()
    payload = first_event(make_trigger(first_poll_delay=0.5))
    assert payload["status"] == "success"
    assert len(usage_requests(emulator)) == 1
    assert time.monotonic() - started >= 0.5


def test_a_deadline_inside_the_first_poll_delay_times_out_without_a_request(
    emulator: Any, cloudflare_conn: Any
) -> None:
    payload = first_event(make_trigger(end_time=time.time() + 0.3, first_poll_delay=3600))
    assert payload["status"] == "timeout"
    assert payload["records"] is None
    assert "no successful check after 0 check(s)" in payload["message"]
    assert emulator.request_log == []


def test_a_deadline_in_the_past_times_out_without_a_request(emulator: Any, cloudflare_conn: Any) -> None:
    payload = first_event(make_trigger(end_time=time.time() - 1))
    assert payload["status"] == "timeout"
    assert payload["records"] is None
    assert emulator.request_log == []


@pytest.mark.parametrize(
    ("token", "status", "code", "error_type"),
    [
        (NO_BILLING_TOKEN, 403, 10000, "CloudflarePermissionError"),
        ("wrong_token_0000000000000000000000000000", 403, 9109, "CloudflareAuthError"),
    ],
)
def test_bad_credentials_fail_at_once(
    emulator: Any,
    cloudflare_conn: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    token: str,
    status: int,
    code: int,
    error_type: str,
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_CLOUDFLARE_DEFAULT", json.dumps({**cloudflare_conn, "password": token}))
    started = time.monotonic()
    payload = first_event(make_trigger(end_time=time.time() + 3))

    assert time.monotonic() - started < 2
    assert len(emulator.request_log) == 1
    assert payload["status"] == "error"
    assert payload["http_status"] == status
    assert payload["codes"] == [code]
    assert payload["error_type"] == error_type
    assert payload["permanent"] is True
    assert str(code) in payload["message"]
    assert token not in json.dumps(payload)


def test_bad_input_fails_at_once_without_a_request(emulator: Any, cloudflare_conn: Any) -> None:
    # Bad input the hook catches (a metric with spaces) ends the wait as an error, with no request.
    payload = first_event(make_trigger(metric="not a metric"))
    assert payload["status"] == "error"
    assert payload["error_type"] == "CloudflareInputError"
    assert payload["permanent"] is True and payload["parameter"] == "metric"
    assert payload["http_status"] is None and payload["codes"] == []
    assert emulator.request_log == []


def test_rate_limit_is_waited_out_as_retry_after_says(emulator: Any, cloudflare_conn: Any) -> None:
    # The connection's backoff is 10-50 ms; only Retry-After can make the retry wait a whole second.
    emulator.add_fault(route="v2", kind="rate_limit", retry_after=1, count=1)
    started = time.monotonic()
    payload = first_event(make_trigger())
    elapsed = time.monotonic() - started

    assert payload["status"] == "success"
    assert [entry["status"] for entry in usage_requests(emulator)] == [429, 200]
    assert elapsed >= 1.0


def test_server_errors_past_the_hook_retries_keep_the_trigger_polling(emulator: Any, cloudflare_conn: Any) -> None:
    # max_retries=1: each check is at most two requests; the first two checks both exhaust it.
    emulator.add_fault(route="v2", kind="status", status=503, count=4)
    payload = first_event(make_trigger(retry_settings={"max_retries": 1}))

    assert payload["status"] == "success"
    assert [entry["status"] for entry in usage_requests(emulator)] == [503, 503, 503, 503, 200]


def test_a_timeout_during_transient_errors_reports_the_last_error(emulator: Any, cloudflare_conn: Any) -> None:
    emulator.add_fault(route="v2", kind="status", status=502)
    payload = first_event(make_trigger(end_time=time.time() + 0.8, retry_settings={"max_retries": 0}))

    assert payload["status"] == "timeout"
    assert payload["records"] is None
    assert "502" in payload["last_error"]
    assert "no successful check" in payload["message"]
    # The sensor raises this transient error rather than a sensor timeout: Airflow retries it.
    assert (payload["last_error_type"], payload["last_http_status"]) == ("CloudflareServerError", 502)


def test_a_timeout_after_an_answer_reports_no_error(emulator: Any, cloudflare_conn: Any) -> None:
    # The first check fails, the later ones answer "not yet": the last check is what counts.
    emulator.add_fault(route="v2", kind="status", status=502, count=1)
    # Long enough for several answered checks even on a loaded machine (the deadline may still cut
    # one short: once a check has been answered, that does not count as an error).
    payload = first_event(make_trigger(day=PENDING_DAY, end_time=time.time() + 3.0, retry_settings={"max_retries": 0}))
    assert payload["status"] == "timeout"
    assert payload["records"] == 0
    assert (payload["last_error"], payload["last_error_type"], payload["last_http_status"]) == (None, None, None)


def test_a_long_retry_after_never_outlives_end_time(emulator: Any, cloudflare_conn: Any) -> None:
    emulator.add_fault(route="v2", kind="rate_limit", retry_after=30)
    started = time.monotonic()
    payload = first_event(make_trigger(end_time=time.time() + 1.0))

    assert payload["status"] == "timeout"
    assert time.monotonic() - started < 2.0
    assert len(usage_requests(emulator)) == 1
    # No check ever got an answer: as transient as a failed one (the status is unknown).
    assert payload["last_error"] == "the last check was still retrying at the deadline"
    assert (payload["last_error_type"], payload["last_http_status"]) == ("CloudflareServerError", None)


def test_paygo_request_starts_at_the_given_from_date(emulator: Any, cloudflare_conn: Any) -> None:
    anchor, _ = emulator.billing_period(DEFAULT_ACCOUNT_ID, AVAILABLE_DAY)
    payload = first_event(make_trigger(source="paygo", paygo_path="billable-usage", from_date=anchor.isoformat()))
    expected = len(emulator.expected_records(DEFAULT_ACCOUNT_ID, AVAILABLE_DAY, source="billable-usage"))
    assert payload == {
        "status": "success",
        "records": expected,
        "day": AVAILABLE_DAY,
        "account_id": DEFAULT_ACCOUNT_ID,
    }
    assert usage_requests(emulator, "billable-usage")[0]["query"] == {
        "from": [anchor.isoformat()],
        "to": ["2025-06-19"],
    }


def test_the_token_never_reaches_an_event_or_the_log(
    emulator: Any, cloudflare_conn: Any, caplog: pytest.LogCaptureFixture
) -> None:
    emulator.add_fault(route="v2", kind="status", status=500, message=f"echo {DEFAULT_TOKEN}")
    payload = first_event(make_trigger(end_time=time.time() + 0.5, retry_settings={"max_retries": 0}))
    assert DEFAULT_TOKEN not in json.dumps(payload)
    assert DEFAULT_TOKEN not in caplog.text


def test_an_organizations_day_is_polled_on_the_organization_route(emulator: Any, cloudflare_conn: Any) -> None:
    from airflow_provider_cfbilling.emulator import DEFAULT_ORGANIZATION_ID

    trigger = make_trigger(account_id="", organization_id=DEFAULT_ORGANIZATION_ID)
    assert trigger.serialize()[1]["organization_id"] == DEFAULT_ORGANIZATION_ID
    payload = first_event(trigger)
    day = dt.date.fromisoformat(AVAILABLE_DAY)
    assert payload["status"] == "success"
    assert payload["records"] == len(emulator.expected_organization_records(DEFAULT_ORGANIZATION_ID, day))
    assert [entry["route"] for entry in emulator.request_log] == ["organization-v2"]
