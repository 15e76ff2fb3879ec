"""CloudflareUsageAvailableSensor against the emulator: what counts as available, which errors fail
at once, what is checked before any request, and how deferral starts and ends."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from harness import advance_clock_after

from airflow_provider_cfbilling.emulator import DEFAULT_ACCOUNT_ID, NO_BILLING_TOKEN
from airflow_provider_cfbilling.exceptions import (
    CloudflareAuthError,
    CloudflareInputError,
    CloudflareNotFoundError,
    CloudflarePermissionError,
    CloudflareRateLimitError,
    CloudflareServerError,
)
from airflow_provider_cfbilling.sensors.billing import CloudflareUsageAvailableSensor
from airflow_provider_cfbilling.triggers.billing import CloudflareUsageAvailableTrigger

# Airflow 3 warns when these exceptions are imported from airflow.exceptions (the portable place).
pytestmark = pytest.mark.filterwarnings(r"ignore:airflow\.exceptions\.\w+ is deprecated")

# The emulator fixture's clock is 2025-06-20 12:00 UTC and a day appears 6 h after it ends.
AVAILABLE_DAY = "2025-06-18"
PENDING_DAY = "2025-06-20"
TO_PENDING_DAY = 18 * 3600
METRIC = "workers_standard_requests"


def make_sensor(**overrides: Any) -> CloudflareUsageAvailableSensor:
    kwargs: dict[str, Any] = {
        "task_id": "wait_for_usage",
        "day": AVAILABLE_DAY,
        "poke_interval": 0.2,
        "timeout": 10,
        "deferrable": False,
    }
    kwargs.update(overrides)
    sensor = CloudflareUsageAvailableSensor(**kwargs)
    _SENSORS.append(sensor)
    return sensor


_SENSORS: list[CloudflareUsageAvailableSensor] = []


@pytest.fixture(autouse=True)
def _close_sensor_hooks() -> Iterator[None]:
    """Tests call poke() directly; execute() closes the sensor's hook (its HTTP client) itself."""
    yield
    while _SENSORS:
        hook = _SENSORS.pop()._hook
        if hook is not None:
            hook.close()


def requests_to(emulator: Any, route: str = "v2") -> list[dict[str, Any]]:
    return [entry for entry in emulator.request_log if entry["route"] == route]


def expected_count(emulator: Any, day: str = AVAILABLE_DAY, **kwargs: Any) -> int:
    return len(emulator.expected_records(DEFAULT_ACCOUNT_ID, day, **kwargs))


# ---------------------------------------------------------------------------------------------- availability


def test_poke_is_true_for_an_available_day_and_false_before(emulator: Any, cloudflare_conn: Any) -> None:
    assert make_sensor().poke({}) is True
    assert make_sensor(day=PENDING_DAY).poke({}) is False
    assert [entry["query"] for entry in requests_to(emulator)] == [
        {"from": [AVAILABLE_DAY], "to": ["2025-06-19"]},
        {"from": [PENDING_DAY], "to": ["2025-06-21"]},
    ]


def test_min_records_is_the_threshold(emulator: Any, cloudflare_conn: Any) -> None:
    count = expected_count(emulator)
    assert make_sensor(min_records=count).poke({}) is True
    assert make_sensor(min_records=count + 1).poke({}) is False


def test_records_of_the_next_day_do_not_count_when_to_is_inclusive(emulator: Any, cloudflare_conn: Any) -> None:
    emulator.configure(to_inclusive=True)
    count = expected_count(emulator)
    # The server also returns 2025-06-19 (available too): only the day itself may count.
    assert len(emulator.expected_records(DEFAULT_ACCOUNT_ID, "2025-06-19")) > 0
    assert make_sensor(min_records=count).poke({}) is True
    assert make_sensor(min_records=count + 1).poke({}) is False


def test_metric_is_filtered_client_side_when_the_server_ignores_it(emulator: Any, cloudflare_conn: Any) -> None:
    emulator.configure(ignore_metric_filter=True)
    count = expected_count(emulator, metric=METRIC)
    assert 0 < count < expected_count(emulator)
    assert make_sensor(metric=METRIC, min_records=count).poke({}) is True
    assert make_sensor(metric=METRIC, min_records=count + 1).poke({}) is False
    assert requests_to(emulator)[0]["query"]["metric"] == [METRIC]


def test_default_day_is_the_last_day_of_the_data_interval(emulator: Any, cloudflare_conn: Any) -> None:
    context = {
        "data_interval_start": dt.datetime(2025, 6, 17, tzinfo=dt.timezone.utc),
        "data_interval_end": dt.datetime(2025, 6, 19, tzinfo=dt.timezone.utc),
    }
    assert make_sensor(day=None).poke(context) is True
    assert requests_to(emulator)[0]["query"] == {"from": [AVAILABLE_DAY], "to": ["2025-06-19"]}


def test_paygo_starts_at_the_billing_cycle_anchor_and_counts_only_the_day(emulator: Any, cloudflare_conn: Any) -> None:
    anchor, _ = emulator.billing_period(DEFAULT_ACCOUNT_ID, AVAILABLE_DAY)
    assert anchor < dt.date.fromisoformat(AVAILABLE_DAY) - dt.timedelta(days=1)  # a range of several days
    count = expected_count(emulator, source="billable-usage")
    sensor = make_sensor(source="paygo", paygo_path="billable-usage", min_records=count)

    assert sensor.poke({}) is True
    assert make_sensor(source="paygo", paygo_path="billable-usage", min_records=count + 1).poke({}) is False
    assert [entry["route"] for entry in emulator.request_log][:2] == ["billable-usage-info", "billable-usage"]
    assert requests_to(emulator, "billable-usage")[0]["query"] == {"from": [anchor.isoformat()], "to": ["2025-06-19"]}


def test_paygo_anchor_is_read_once_per_run(emulator: Any, cloudflare_conn: Any) -> None:
    sensor = make_sensor(source="paygo", paygo_path="paygo-usage", day=PENDING_DAY)
    assert sensor.poke({}) is False
    assert sensor.poke({}) is False
    assert [entry["route"] for entry in emulator.request_log] == ["paygo-usage-info", "paygo-usage", "paygo-usage"]


def test_paygo_beta_path_asks_for_the_day_alone(
    emulator: Any, cloudflare_conn: dict[str, Any], monkeypatch: Any
) -> None:
    # The connection's choice of PayGo path is the default.
    extra = {**cloudflare_conn["extra"], "paygo_path": "billing/usage/paygo"}
    monkeypatch.setenv("AIRFLOW_CONN_CLOUDFLARE_DEFAULT", json.dumps({**cloudflare_conn, "extra": extra}))
    count = expected_count(emulator, source="paygo")
    assert make_sensor(source="paygo", min_records=count).poke({}) is True
    assert [entry["route"] for entry in emulator.request_log] == ["paygo"]
    assert emulator.request_log[0]["query"] == {"from": [AVAILABLE_DAY], "to": ["2025-06-19"]}


# ---------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("token", "error_class", "code"),
    [
        (NO_BILLING_TOKEN, CloudflarePermissionError, 10000),
        ("wrong_token_0000000000000000000000000000", CloudflareAuthError, 9109),
    ],
)
def test_bad_credentials_fail_at_once(
    emulator: Any, cloudflare_conn: dict[str, Any], monkeypatch: Any, token: str, error_class: type, code: int
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_CLOUDFLARE_DEFAULT", json.dumps({**cloudflare_conn, "password": token}))
    started = time.monotonic()
    with pytest.raises(error_class) as caught:
        make_sensor(timeout=3).execute({})
    assert time.monotonic() - started < 2
    assert caught.value.codes == [code]
    assert len(emulator.request_log) == 1
    assert token not in str(caught.value)


def test_unknown_paygo_route_fails_at_once(emulator: Any, cloudflare_conn: Any) -> None:
    emulator.add_fault(route="paygo", kind="status", status=404, code=7003, message="No route for the URI")
    with pytest.raises(CloudflareNotFoundError):
        make_sensor(source="paygo", paygo_path="billing/usage/paygo", timeout=3).execute({})
    assert len(emulator.request_log) == 1


def test_server_errors_past_the_hook_retries_are_not_yet(emulator: Any, cloudflare_conn: Any) -> None:
    emulator.add_fault(route="v2", kind="status", status=503, count=2)
    sensor = make_sensor(max_retries=1)
    assert sensor.poke({}) is False
    assert sensor.poke({}) is True
    assert [entry["status"] for entry in requests_to(emulator)] == [503, 503, 200]


def test_rate_limits_are_waited_out_by_the_hook(emulator: Any, cloudflare_conn: Any) -> None:
    emulator.add_fault(route="v2", kind="rate_limit", retry_after=1, count=1)
    started = time.monotonic()
    assert make_sensor().poke({}) is True
    assert time.monotonic() - started >= 1.0
    assert [entry["status"] for entry in requests_to(emulator)] == [429, 200]


# ---------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"day": "2025-13-01"}, "day"),
        ({"day": "2025-06-18T05:00:00Z"}, "day"),
        ({"day": dt.datetime(2025, 6, 18)}, "day"),
        ({"account_id": "not-an-account"}, "account_id"),
        ({"metric": "two words"}, "metric"),
        ({"metric": 42}, "metric"),
        ({"source": "paygo", "paygo_path": "{{ 'paygo-usage-v9' }}"}, "paygo_path"),
    ],
)
def test_bad_templated_values_fail_before_any_request(
    emulator: Any, cloudflare_conn: Any, kwargs: dict[str, Any], parameter: str
) -> None:
    sensor = make_sensor(**kwargs)
    if kwargs.get("paygo_path"):
        sensor.paygo_path = "paygo-usage-v9"  # as rendered
    for deferrable in (False, True):
        sensor.deferrable = deferrable
        with pytest.raises(CloudflareInputError) as caught:
            sensor.execute({})
        assert caught.value.parameter == parameter
    assert emulator.request_log == []


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"source": "focus"}, "source"),
        ({"paygo_path": "billable-usage"}, "paygo_path"),
        ({"source": "paygo", "paygo_path": "usage"}, "paygo_path"),
        ({"source": "paygo", "metric": METRIC}, "metric"),
        ({"min_records": 0}, "min_records"),
        ({"min_records": 1.5}, "min_records"),
        ({"min_records": True}, "min_records"),
        ({"poll_interval": 0}, "poll_interval"),
        ({"poll_interval": "soon"}, "poll_interval"),
        ({"max_retries": 1.5}, "max_retries"),
        ({"backoff_base": -1}, "backoff_base"),
        ({"request_timeout": 0}, "request_timeout"),
    ],
)
def test_bad_arguments_fail_when_the_dag_is_parsed(kwargs: dict[str, Any], parameter: str) -> None:
    with pytest.raises(CloudflareInputError) as caught:
        make_sensor(**kwargs)
    assert caught.value.parameter == parameter
    assert caught.value.fix


def test_nothing_happens_at_parse_time(monkeypatch: Any) -> None:
    # No connection exists and nothing listens: building the sensor must not notice.
    monkeypatch.delenv("AIRFLOW_CONN_CLOUDFLARE_DEFAULT", raising=False)
    sensor = make_sensor(day="{{ ds }}", account_id="{{ params.account }}", metric="{{ params.metric }}")
    assert sensor._hook is None
    assert tuple(sensor.template_fields) == ("day", "account_id", "metric", "paygo_path", "organization_id")


def test_arguments_and_defaults() -> None:
    sensor = make_sensor(poke_interval=dt.timedelta(minutes=5), max_retries=2, request_timeout=30)
    assert sensor.poll_interval == 300
    assert sensor.hook_settings == {"max_retries": 2, "timeout": 30.0}
    assert sensor.cloudflare_conn_id == "cloudflare_default"
    assert sensor.min_records == 1
    assert sensor.source == "v2"
    assert make_sensor(poll_interval=dt.timedelta(seconds=90)).poll_interval == 90


def test_deferrable_defaults_to_the_airflow_setting(monkeypatch: Any) -> None:
    kwargs = {"task_id": "t", "day": AVAILABLE_DAY}
    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "True")
    assert CloudflareUsageAvailableSensor(**kwargs).deferrable is True
    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "False")
    assert CloudflareUsageAvailableSensor(**kwargs).deferrable is False
    assert CloudflareUsageAvailableSensor(**kwargs, deferrable=True).deferrable is True


# ---------------------------------------------------------------------------------------------- execution


def test_poke_mode_waits_for_the_day_and_returns_the_count(emulator: Any, cloudflare_conn: Any) -> None:
    advance_clock_after(emulator, requests=2, seconds=TO_PENDING_DAY)
    result = make_sensor(day=PENDING_DAY).execute({})
    assert result == expected_count(emulator, PENDING_DAY)
    assert len(requests_to(emulator)) == 3


def test_poke_mode_times_out(emulator: Any, cloudflare_conn: Any) -> None:
    from airflow.exceptions import AirflowSensorTimeout, AirflowSkipException

    with pytest.raises(AirflowSensorTimeout):
        make_sensor(day=PENDING_DAY, timeout=0.3, poke_interval=0.1).execute({})
    with pytest.raises(AirflowSkipException):
        make_sensor(day=PENDING_DAY, timeout=0.3, poke_interval=0.1, soft_fail=True).execute({})


def test_deferrable_returns_at_once_when_already_available(emulator: Any, cloudflare_conn: Any) -> None:
    assert make_sensor(deferrable=True).execute({}) == expected_count(emulator)
    assert len(emulator.request_log) == 1


def test_deferrable_hands_the_wait_to_the_trigger(emulator: Any, cloudflare_conn: Any) -> None:
    from airflow.exceptions import TaskDeferred

    sensor = make_sensor(
        day=PENDING_DAY,
        deferrable=True,
        timeout=3600,
        poke_interval=120,
        source="paygo",
        paygo_path="billable-usage",
        min_records=3,
        max_retries=4,
        retry_after_max=90,
    )
    before = time.time()
    with pytest.raises(TaskDeferred) as caught:
        sensor.execute({})
    deferred = caught.value
    anchor, _ = emulator.billing_period(DEFAULT_ACCOUNT_ID, PENDING_DAY)

    assert isinstance(deferred.trigger, CloudflareUsageAvailableTrigger)
    assert deferred.method_name == "execute_complete"
    assert deferred.timeout == dt.timedelta(seconds=3600)
    _classpath, kwargs = deferred.trigger.serialize()
    assert before + 3600 <= kwargs.pop("end_time") <= time.time() + 3600
    assert kwargs == {
        "account_id": DEFAULT_ACCOUNT_ID,
        "day": PENDING_DAY,
        "source": "paygo",
        "metric": None,
        "paygo_path": "billable-usage",
        "organization_id": None,
        "from_date": anchor.isoformat(),
        "min_records": 3,
        "cloudflare_conn_id": "cloudflare_default",
        "poll_interval": 120.0,
        "retry_settings": {"max_retries": 4, "retry_after_max": 90.0},
        # The sensor has just checked: the trigger's first check is one interval later.
        "first_poll_delay": 120.0,
    }
    # One check before deferring (after the anchor lookup).
    assert [entry["route"] for entry in emulator.request_log] == ["billable-usage-info", "billable-usage"]


def test_deferrable_still_defers_when_the_first_check_hits_server_errors(emulator: Any, cloudflare_conn: Any) -> None:
    from airflow.exceptions import TaskDeferred

    emulator.add_fault(route="*", kind="status", status=500)
    with pytest.raises(TaskDeferred) as caught:
        make_sensor(deferrable=True, source="paygo", paygo_path="paygo-usage", max_retries=0).execute({})
    # Without the anchor, the trigger's requests start early enough to contain any anchor day.
    assert caught.value.trigger.serialize()[1]["from_date"] == "2025-05-19"


# ---------------------------------------------------------------------------------------------- execute_complete


def test_execute_complete_success_returns_the_count() -> None:
    event = {"status": "success", "records": 23, "day": AVAILABLE_DAY, "account_id": DEFAULT_ACCOUNT_ID}
    assert make_sensor(deferrable=True).execute_complete({}, event) == 23


def test_execute_complete_timeout_fails_or_skips_with_soft_fail() -> None:
    from airflow.exceptions import AirflowSensorTimeout, AirflowSkipException

    event = {"status": "timeout", "message": "not available after 12 checks", "records": 0, "last_error": None}
    with pytest.raises(AirflowSensorTimeout, match="not available after 12 checks"):
        make_sensor(deferrable=True).execute_complete({}, event)
    with pytest.raises(AirflowSkipException, match="not available after 12 checks"):
        make_sensor(deferrable=True, soft_fail=True).execute_complete({}, event)


PERMISSION_EVENT = {
    "status": "error",
    "message": "The credentials lack permission | endpoint /accounts/{account_id}/billable/usage | HTTP 403 | "
    "Cloudflare errors [10000: Authentication error]",
    "http_status": 403,
    "codes": [10000],
    "error_type": "CloudflarePermissionError",
    "permanent": True,
    "summary": "The credentials lack permission",
    "messages": ["Authentication error"],
    "endpoint": "/accounts/{account_id}/billable/usage",
    "day": AVAILABLE_DAY,
    "account_id": DEFAULT_ACCOUNT_ID,
}


def test_execute_complete_raises_the_permanent_error_of_the_trigger() -> None:
    from airflow_provider_cfbilling.version_compat import AirflowFailException

    with pytest.raises(CloudflarePermissionError) as caught:
        make_sensor(deferrable=True).execute_complete({}, PERMISSION_EVENT)
    error = caught.value
    # No Airflow retries: an AirflowFailException, with Cloudflare's status, codes and message once.
    assert isinstance(error, AirflowFailException)
    assert str(error) == (
        f"Waiting for Cloudflare usage of {AVAILABLE_DAY} failed: The credentials lack permission | "
        "endpoint /accounts/{account_id}/billable/usage | HTTP 403 | Cloudflare errors [10000: Authentication error]"
    )
    assert (error.status, error.codes, error.retryable) == (403, [10000], False)


def test_execute_complete_skips_on_a_permanent_error_with_soft_fail_or_never_fail() -> None:
    from airflow.exceptions import AirflowSkipException

    for flag in ("soft_fail", "never_fail"):
        with pytest.raises(AirflowSkipException, match=f"10000: Authentication error.*{flag}: skipping") as caught:
            make_sensor(deferrable=True, **{flag: True}).execute_complete({}, PERMISSION_EVENT)
        assert isinstance(caught.value.__cause__, CloudflarePermissionError)


def test_execute_complete_raises_bad_input_met_by_the_trigger() -> None:
    event = {
        "status": "error",
        "message": "metric: 'not a metric' is not a billable metric id. Use an id",
        "http_status": None,
        "codes": [],
        "error_type": "CloudflareInputError",
        "permanent": True,
        "parameter": "metric",
        "problem": "'not a metric' is not a billable metric id",
        "fix": "Use an id",
        "day": AVAILABLE_DAY,
        "account_id": DEFAULT_ACCOUNT_ID,
    }
    with pytest.raises(CloudflareInputError) as caught:
        make_sensor(deferrable=True).execute_complete({}, event)
    assert caught.value.parameter == "metric"
    assert isinstance(caught.value, ValueError)


def test_execute_complete_an_unexpected_error_keeps_airflow_retries() -> None:
    from airflow.exceptions import AirflowException

    from airflow_provider_cfbilling.version_compat import AirflowFailException

    event = {
        "status": "error",
        "message": "boom",
        "http_status": None,
        "codes": [],
        "error_type": "RuntimeError",
        "permanent": False,
        "day": AVAILABLE_DAY,
        "account_id": DEFAULT_ACCOUNT_ID,
    }
    with pytest.raises(AirflowException, match=r"failed \(RuntimeError\): boom") as caught:
        make_sensor(deferrable=True).execute_complete({}, event)
    assert not isinstance(caught.value, AirflowFailException)
    with pytest.raises(AirflowException, match="Unexpected event"):
        make_sensor(deferrable=True).execute_complete({}, {"status": "weird"})


def test_execute_complete_error_event_of_an_older_trigger_is_still_permanent() -> None:
    # Events from before "permanent" existed (a trigger in flight across an upgrade).
    from airflow.exceptions import AirflowSensorTimeout

    event = {
        key: PERMISSION_EVENT[key]
        for key in ("status", "message", "http_status", "codes", "error_type", "day", "account_id")
    }
    with pytest.raises(CloudflarePermissionError) as caught:
        make_sensor(deferrable=True).execute_complete({}, event)
    assert str(caught.value) == f"Waiting for Cloudflare usage of {AVAILABLE_DAY} failed: {event['message']}"
    assert (caught.value.status, caught.value.codes) == (403, [10000])
    assert not isinstance(caught.value, AirflowSensorTimeout)


def test_execute_complete_timeout_with_a_failing_last_check_keeps_airflow_retries() -> None:
    from airflow.exceptions import AirflowSkipException

    from airflow_provider_cfbilling.version_compat import AirflowFailException

    event = {
        "status": "timeout",
        "message": "not available before the sensor's timeout: no successful check after 5 check(s); last error: 503",
        "records": None,
        "last_error": "Cloudflare kept failing (server error) past the retry budget | HTTP 503",
        "last_error_type": "CloudflareServerError",
        "last_http_status": 503,
    }
    with pytest.raises(CloudflareServerError, match="no successful check after 5") as caught:
        make_sensor(deferrable=True).execute_complete({}, event)
    assert not isinstance(caught.value, AirflowFailException) and caught.value.status == 503
    with pytest.raises(CloudflareRateLimitError):
        make_sensor(deferrable=True).execute_complete({}, {**event, "last_error_type": "CloudflareRateLimitError"})
    with pytest.raises(AirflowSkipException):
        make_sensor(deferrable=True, soft_fail=True).execute_complete({}, event)


# ---------------------------------------------------------------------------------------------- failing fast


def test_poke_mode_timeout_with_a_failing_last_check_keeps_airflow_retries(emulator: Any, cloudflare_conn: Any) -> None:
    from airflow.exceptions import AirflowSkipException

    emulator.add_fault(route="v2", kind="status", status=503)
    with pytest.raises(CloudflareServerError, match="could not be checked before the sensor's timeout") as caught:
        make_sensor(timeout=0.3, poke_interval=0.1, max_retries=0).execute({})
    assert caught.value.status == 503 and caught.value.retryable
    with pytest.raises(AirflowSkipException):
        make_sensor(timeout=0.3, poke_interval=0.1, max_retries=0, soft_fail=True).execute({})


def test_poke_mode_timeout_after_an_answer_is_a_sensor_timeout(emulator: Any, cloudflare_conn: Any) -> None:
    from airflow.exceptions import AirflowSensorTimeout

    # The first check fails, the later ones answer "not yet": the last check is what counts.
    emulator.add_fault(route="v2", kind="status", status=503, count=1)
    with pytest.raises(AirflowSensorTimeout):
        make_sensor(day=PENDING_DAY, timeout=0.3, poke_interval=0.1, max_retries=0).execute({})


@pytest.mark.parametrize("deferrable", [False, True])
@pytest.mark.parametrize("flag", ["soft_fail", "never_fail"])
def test_soft_fail_skips_on_permanent_errors_in_every_mode(
    emulator: Any, cloudflare_conn: dict[str, Any], monkeypatch: Any, deferrable: bool, flag: str
) -> None:
    from airflow.exceptions import AirflowSkipException

    monkeypatch.setenv(
        "AIRFLOW_CONN_CLOUDFLARE_DEFAULT",
        json.dumps({**cloudflare_conn, "password": "wrong_token_0000000000000000000000000000"}),
    )
    with pytest.raises(AirflowSkipException) as caught:
        make_sensor(deferrable=deferrable, **{flag: True}).execute({})
    assert isinstance(caught.value.__cause__, CloudflareAuthError)
    # Bad input found when the task runs, too.
    with pytest.raises(AirflowSkipException) as caught:
        make_sensor(deferrable=deferrable, day="2025-13-01", **{flag: True}).execute({})
    assert isinstance(caught.value.__cause__, CloudflareInputError)
    assert len(emulator.request_log) == 1


@pytest.mark.parametrize("deferrable", [False, True])
def test_without_soft_fail_permanent_errors_fail_without_retries(
    emulator: Any, cloudflare_conn: dict[str, Any], monkeypatch: Any, deferrable: bool
) -> None:
    from airflow_provider_cfbilling.version_compat import AirflowFailException

    monkeypatch.setenv("AIRFLOW_CONN_CLOUDFLARE_DEFAULT", json.dumps({**cloudflare_conn, "password": NO_BILLING_TOKEN}))
    with pytest.raises(CloudflarePermissionError) as caught:
        make_sensor(deferrable=deferrable, silent_fail=True).execute({})
    # silent_fail (which turns other poke errors into "not yet") does not swallow them either.
    assert isinstance(caught.value, AirflowFailException)
    assert len(emulator.request_log) == 1
