"""Failing fast (issue 14): errors that no retry can cure fail the task at once, without its Airflow
retries; rate limits, 5xx and network errors keep them.

The DAGs (``tests/dags/reliability_fail_fast.py``) give every task ``retries=2`` and
``retry_delay=0``. ``dag.test()`` re-runs a task that went ``up_for_retry`` within the same call
(its loop asks the DAG run for schedulable task instances until the run ends), so a retried task
ends ``failed`` at try 3 and a task that failed fast ends ``failed`` at try 1. The emulator's
request log says how often each task asked: every task asks for its own days.
"""

from __future__ import annotations

import json
import warnings
from typing import Any

import pytest
from harness import run_dag

from airflow_provider_cfbilling.emulator import NO_BILLING_TOKEN
from airflow_provider_cfbilling.exceptions import (
    RETRYABLE_STATUSES,
    CloudflareAPIError,
    CloudflareAuthError,
    CloudflareInputError,
    CloudflareNotFoundError,
    CloudflarePermanentError,
    CloudflarePermissionError,
    CloudflareRateLimitError,
    CloudflareRequestError,
    CloudflareServerError,
)
from airflow_provider_cfbilling.hooks.envelope import MalformedBodyError, classify_error
from airflow_provider_cfbilling.version_compat import (
    AIRFLOW_V_3_0_PLUS,
    AIRFLOW_V_3_1_PLUS,
    AIRFLOW_V_3_2_PLUS,
    AirflowFailException,
)

WRONG_TOKEN = "wrong_token_0000000000000000000000000000"
WINDOW = {"period_start": "2025-06-10", "period_end": "2025-06-11"}
# The emulator's clock is 2025-06-20 12:00 UTC; 2025-06-20 is not published yet (the deferrable
# sensor defers), the other days are. With errors on every request availability does not matter.
DAYS = {"day": "2025-06-17", "deferrable_day": "2025-06-20", "reschedule_day": "2025-06-16"}
CONF = {**WINDOW, **DAYS}
# Which conf day each task asks for (its requests' ``from``).
FROM = {
    "operator": WINDOW["period_start"],
    "sensor_poke": DAYS["day"],
    "sensor_deferrable": DAYS["deferrable_day"],
    "sensor_reschedule": DAYS["reschedule_day"],
}
PERMANENT = (CloudflareAuthError, CloudflarePermissionError, CloudflareNotFoundError, CloudflareRequestError)
TRANSIENT = (CloudflareRateLimitError, CloudflareServerError, MalformedBodyError)

reschedule_on_3_0 = pytest.mark.skipif(
    AIRFLOW_V_3_0_PLUS and not AIRFLOW_V_3_1_PLUS,
    reason="Airflow 3.0's in-process dag.test() supervisor breaks a rescheduled sensor's second run "
    "(see tests/sensors/test_billing_sensor_dags.py); fixed in 3.1",
)


# ---------------------------------------------------------------------------------------------- the classes


def runner_fail_exception() -> type[BaseException]:
    """The AirflowFailException that this Airflow's task runner catches to fail without retries."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if AIRFLOW_V_3_2_PLUS:
            from airflow.sdk.exceptions import AirflowFailException as runner_class
        else:  # 2.x, and 3.0/3.1 whose task runner imports it from airflow.exceptions
            from airflow.exceptions import AirflowFailException as runner_class  # type: ignore[no-redef]
    return runner_class  # type: ignore[no-any-return]


def test_permanent_errors_are_airflow_fail_exceptions() -> None:
    assert AirflowFailException is runner_fail_exception()
    if AIRFLOW_V_3_2_PLUS:  # airflow.exceptions re-exports the SDK's class (deprecated): one class
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import airflow.exceptions

            assert airflow.exceptions.AirflowFailException is AirflowFailException
    for error_class in PERMANENT:
        error = error_class("x", status=403, codes=[10000], messages=["Authentication error"], endpoint="/e")
        assert isinstance(error, AirflowFailException), error_class
        assert isinstance(error, CloudflareAPIError) and isinstance(error, CloudflarePermanentError)
        assert error.retryable is False
        assert str(error) == "x | endpoint /e | HTTP 403 | Cloudflare errors [10000: Authentication error]"
    bad_input = CloudflareInputError("day", "2025-13-01 is not a date", "Use YYYY-MM-DD")
    assert isinstance(bad_input, ValueError) and isinstance(bad_input, AirflowFailException)
    assert bad_input.retryable is False
    assert str(bad_input) == "day: 2025-13-01 is not a date. Use YYYY-MM-DD"


def test_transient_errors_keep_airflow_retries() -> None:
    for error_class in TRANSIENT:
        error = error_class("x", status=503)
        assert not isinstance(error, AirflowFailException), error_class
        assert error.retryable is True
    assert CloudflareServerError("network error").retryable is True


@pytest.mark.parametrize(
    ("status", "codes", "error_class", "retryable"),
    [
        (400, [1183], CloudflareRequestError, False),
        (405, [], CloudflareRequestError, False),
        (422, [], CloudflareRequestError, False),
        (401, [1000], CloudflareAuthError, False),
        (400, [6003, 6111], CloudflareAuthError, False),
        (403, [9109], CloudflareAuthError, False),
        (403, [10000], CloudflarePermissionError, False),
        (404, [7003], CloudflareNotFoundError, False),
        (429, [971], CloudflareRateLimitError, True),
        (500, [], CloudflareServerError, True),
        (503, [9109], CloudflareServerError, True),
        (408, [], CloudflareAPIError, True),
        (409, [7003], CloudflareAPIError, True),
        (200, [10001], CloudflareAPIError, True),  # success: false in a 200
        (200, [9109], CloudflareAuthError, False),
    ],
)
def test_classify_error_decides_retryable_once(
    status: int, codes: list[int], error_class: type[CloudflareAPIError], retryable: bool
) -> None:
    envelope = {"success": False, "errors": [{"code": code, "message": "m"} for code in codes]}
    error = classify_error(status, envelope, "/accounts/{account_id}/billable/usage")
    assert type(error) is error_class
    assert error.retryable is retryable
    assert isinstance(error, AirflowFailException) is (not retryable)
    if status in RETRYABLE_STATUSES or status >= 500:
        assert retryable


def test_a_redirect_is_a_permanent_error() -> None:
    # The hook raises redirects itself (never followed); the status alone says they are permanent.
    assert CloudflareAPIError("redirect", status=301).retryable is False
    assert classify_error(301, None, "/e").retryable is False
    assert isinstance(classify_error(301, None, "/e"), CloudflareRequestError)


# ---------------------------------------------------------------------------------------------- through Airflow


def task_tries(dag_run: Any) -> dict[str, tuple[str, int]]:
    """``{task_id: (state, try_number)}`` of the run's task instances."""
    from airflow.utils.session import create_session

    with create_session() as session:
        return {ti.task_id: (str(ti.state), ti.try_number) for ti in dag_run.get_task_instances(session=session)}


def requests_of(emulator: Any, task_id: str) -> list[Any]:
    """The statuses of the requests the task sent (its own days), oldest first."""
    return [entry["status"] for entry in emulator.request_log if entry.get("query", {}).get("from") == [FROM[task_id]]]


def use_connection(monkeypatch: pytest.MonkeyPatch, base: dict[str, Any], **changes: Any) -> None:
    """``cloudflare_default`` as ``base`` with ``changes``; the hook retries once (2 requests per check)."""
    connection = {**base, **changes, "extra": {**base["extra"], "max_retries": 1}}
    monkeypatch.setenv("AIRFLOW_CONN_CLOUDFLARE_DEFAULT", json.dumps(connection))


e2e = pytest.mark.e2e
uses_db = pytest.mark.usefixtures("airflow_db")


@e2e
@uses_db
@pytest.mark.parametrize(
    ("token", "status", "code", "error_name"),
    [
        (WRONG_TOKEN, 403, 9109, "CloudflareAuthError"),
        (NO_BILLING_TOKEN, 403, 10000, "CloudflarePermissionError"),
    ],
    ids=["wrong-token", "no-billing-read"],
)
def test_bad_credentials_fail_every_task_in_one_try(
    emulator: Any,
    cloudflare_conn: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    token: str,
    status: int,
    code: int,
    error_name: str,
) -> None:
    use_connection(monkeypatch, cloudflare_conn, password=token)
    run = run_dag("fail_fast_v2", conf=CONF)
    assert task_tries(run) == {
        "operator": ("failed", 1),
        "sensor_poke": ("failed", 1),
        "sensor_deferrable": ("failed", 1),
    }
    for task_id in ("operator", "sensor_poke", "sensor_deferrable"):
        assert requests_of(emulator, task_id) == [status], task_id
    assert len(emulator.request_log) == 3
    task_log = capfd.readouterr().out
    assert f"{error_name}: " in task_log and f"{code}: " in task_log


@e2e
@uses_db
def test_an_unknown_route_fails_every_task_in_one_try(
    emulator: Any, cloudflare_conn: dict[str, Any], monkeypatch
) -> None:
    # The PayGo beta path not enabled for the account: Cloudflare answers 404, code 7003.
    use_connection(monkeypatch, cloudflare_conn)
    emulator.add_fault(route="paygo", kind="status", status=404, code=7003, message="No route for the URI")
    run = run_dag("fail_fast_paygo", conf=CONF)
    assert task_tries(run) == {
        "operator": ("failed", 1),
        "sensor_poke": ("failed", 1),
        "sensor_deferrable": ("failed", 1),
    }
    for task_id in ("operator", "sensor_poke", "sensor_deferrable"):
        assert requests_of(emulator, task_id) == [404], task_id
    assert {entry["route"] for entry in emulator.request_log} == {"paygo"}


@e2e
@uses_db
def test_a_bad_request_fails_in_one_try(emulator: Any, cloudflare_conn: dict[str, Any], monkeypatch) -> None:
    # A permanent 4xx other than 401/403/404 (400, code 1183) is a CloudflareRequestError.
    use_connection(monkeypatch, cloudflare_conn)
    emulator.add_fault(route="v2", kind="status", status=400, code=1183, message="Invalid request parameters")
    run = run_dag("fail_fast_v2", conf=CONF)
    assert task_tries(run) == {
        "operator": ("failed", 1),
        "sensor_poke": ("failed", 1),
        "sensor_deferrable": ("failed", 1),
    }
    assert len(emulator.request_log) == 3


@e2e
@uses_db
def test_bad_input_fails_in_one_try_before_any_request(
    emulator: Any, cloudflare_conn: dict[str, Any], monkeypatch, capfd: pytest.CaptureFixture[str]
) -> None:
    use_connection(monkeypatch, cloudflare_conn)
    conf = {**CONF, "period_start": "2025-06-12", "period_end": "2025-06-10", "day": "2025-06-31"}
    conf["deferrable_day"] = "2025-13-01"
    run = run_dag("fail_fast_v2", conf=conf)
    assert task_tries(run) == {
        "operator": ("failed", 1),
        "sensor_poke": ("failed", 1),
        "sensor_deferrable": ("failed", 1),
    }
    assert emulator.request_log == []
    task_log = capfd.readouterr().out
    assert "CloudflareInputError: period_end: " in task_log
    assert "CloudflareInputError: day: " in task_log


@e2e
@uses_db
@pytest.mark.parametrize(
    ("fault", "status"),
    [
        ({"kind": "status", "status": 503}, 503),
        ({"kind": "rate_limit", "retry_after": 0}, 429),
    ],
    ids=["503", "429"],
)
def test_persistent_server_errors_and_rate_limits_keep_airflow_retries(
    emulator: Any,
    cloudflare_conn: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    fault: dict[str, Any],
    status: int,
) -> None:
    use_connection(monkeypatch, cloudflare_conn)
    emulator.add_fault(route="v2", **fault)
    run = run_dag("fail_fast_v2", conf=CONF)
    # Each try failed after the hook's own retries (and, for the sensors, at their timeout with the
    # last check failing that way); Airflow retried twice.
    assert task_tries(run) == {
        "operator": ("failed", 3),
        "sensor_poke": ("failed", 3),
        "sensor_deferrable": ("failed", 3),
    }
    # The operator: 3 tries of 2 requests (the hook's one retry).
    assert requests_of(emulator, "operator") == [status] * 6
    # The sensors asked again and again within each try, 2 requests per check.
    for task_id in ("sensor_poke", "sensor_deferrable"):
        statuses = requests_of(emulator, task_id)
        assert len(statuses) >= 6 and set(statuses) == {status}, task_id
    task_log = capfd.readouterr().out
    name = "CloudflareServerError" if status == 503 else "CloudflareRateLimitError"
    # The sensors reached their timeout with the last check failing: the transient error, not a
    # sensor timeout (which Airflow never retries), fails each try.
    assert f"{name}: Usage of {DAYS['day']} for account" in task_log
    assert "could not be checked before the sensor's timeout (Sensor has timed out" in task_log
    assert f"{name}: Usage of {DAYS['deferrable_day']} for account" in task_log


@e2e
@uses_db
def test_a_transient_error_that_goes_away_within_the_retries_succeeds(
    emulator: Any, cloudflare_conn: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The first try fails (2 x 503, past the hook's one retry); the second try succeeds.
    use_connection(monkeypatch, cloudflare_conn)
    emulator.add_fault(route="v2", kind="status", status=503, count=2)
    run = run_dag("fail_fast_v2_operator", conf=CONF)
    assert task_tries(run) == {"operator": ("success", 2)}
    assert requests_of(emulator, "operator") == [503, 503, 200]


@e2e
@uses_db
def test_a_permanent_error_met_by_the_trigger_fails_in_one_try(
    emulator: Any, cloudflare_conn: dict[str, Any], monkeypatch, capfd: pytest.CaptureFixture[str]
) -> None:
    # The task's own check passes (not available yet); the trigger's first poll is refused.
    use_connection(monkeypatch, cloudflare_conn)
    emulator.add_fault(route="v2", kind="status", status=403, code=10000, message="Authentication error", nth=2)
    run = run_dag("fail_fast_trigger", conf=CONF)
    assert task_tries(run) == {"sensor_deferrable": ("failed", 1)}
    assert requests_of(emulator, "sensor_deferrable") == [200, 403]
    task_log = capfd.readouterr().out
    assert "CloudflarePermissionError: Waiting for Cloudflare usage of 2025-06-20 failed" in task_log


@e2e
@uses_db
def test_soft_fail_skips_on_a_permanent_error_met_by_the_trigger(
    emulator: Any, cloudflare_conn: dict[str, Any], monkeypatch
) -> None:
    use_connection(monkeypatch, cloudflare_conn)
    emulator.add_fault(route="v2", kind="status", status=403, code=10000, message="Authentication error", nth=2)
    run = run_dag("fail_fast_trigger_soft_fail", conf=CONF)
    assert task_tries(run) == {"sensor_deferrable": ("skipped", 1)}
    assert requests_of(emulator, "sensor_deferrable") == [200, 403]


@e2e
@uses_db
def test_soft_fail_skips_on_bad_credentials(emulator: Any, cloudflare_conn: dict[str, Any], monkeypatch) -> None:
    use_connection(monkeypatch, cloudflare_conn, password=WRONG_TOKEN)
    run = run_dag("fail_fast_soft_fail", conf=CONF)
    assert task_tries(run) == {"sensor_poke": ("skipped", 1), "sensor_deferrable": ("skipped", 1)}
    assert len(emulator.request_log) == 2


@e2e
@uses_db
def test_reschedule_mode_fails_in_one_try_on_bad_credentials(
    emulator: Any, cloudflare_conn: dict[str, Any], monkeypatch
) -> None:
    use_connection(monkeypatch, cloudflare_conn, password=WRONG_TOKEN)
    run = run_dag("fail_fast_reschedule", conf=CONF)
    assert task_tries(run) == {"sensor_reschedule": ("failed", 1)}
    assert requests_of(emulator, "sensor_reschedule") == [403]


@e2e
@uses_db
@reschedule_on_3_0
def test_reschedule_mode_keeps_airflow_retries_on_persistent_server_errors(
    emulator: Any, cloudflare_conn: dict[str, Any], monkeypatch
) -> None:
    use_connection(monkeypatch, cloudflare_conn)
    emulator.add_fault(route="v2", kind="status", status=503)
    run = run_dag("fail_fast_reschedule", conf=CONF)
    assert task_tries(run) == {"sensor_reschedule": ("failed", 3)}
    assert set(requests_of(emulator, "sensor_reschedule")) == {503}
