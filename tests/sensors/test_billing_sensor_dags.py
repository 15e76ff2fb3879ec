"""The sensor run for real through Airflow's task runner (dag.test()), against the emulator.

dag.test() runs a deferred task's trigger in line, then resumes the task with the trigger's event,
so these runs go through defer -> trigger -> execute_complete exactly as a triggerer would.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest
from harness import advance_clock_after, reschedule_count, run_dag, task_states, xcom

from airflow_provider_cfbilling.emulator import DEFAULT_ACCOUNT_ID
from airflow_provider_cfbilling.version_compat import AIRFLOW_V_3_0_PLUS, AIRFLOW_V_3_1_PLUS

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.usefixtures("airflow_db", "cloudflare_conn"),
    pytest.mark.filterwarnings(r"ignore:airflow\.exceptions\.\w+ is deprecated"),
]

# The emulator fixture's clock is 2025-06-20 12:00 UTC and a day appears 6 h after it ends.
AVAILABLE_DAY = "2025-06-18"
PENDING_DAY = "2025-06-20"
TO_PENDING_DAY = 18 * 3600
LOGICAL_DATE = dt.datetime(2025, 6, 19, 3, tzinfo=dt.timezone.utc)


def v2_requests(emulator: Any) -> list[dict[str, Any]]:
    return [entry for entry in emulator.request_log if entry["route"] == "v2"]


def test_deferrable_sensor_succeeds_for_an_available_day_defaulting_to_the_day_before(emulator: Any) -> None:
    # No day in the conf: the day before the logical date (a manual run has no data interval).
    run = run_dag("cf_sensor_deferrable", logical_date=LOGICAL_DATE)
    assert task_states(run) == {"wait": "success"}
    assert xcom(run, "wait") == len(emulator.expected_records(DEFAULT_ACCOUNT_ID, AVAILABLE_DAY))
    assert [entry["query"]["from"] for entry in v2_requests(emulator)] == [[AVAILABLE_DAY]]


def reschedules(dag_run: Any, task_id: str) -> int:
    return reschedule_count(dag_run, task_id)


def test_deferred_sensor_resumes_when_the_day_appears_while_the_trigger_waits(
    emulator: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # Request 1 is the task's own check; the trigger makes request 2 (not yet) and, after the clock
    # moved, request 3 (available).
    advance_clock_after(emulator, requests=2, seconds=TO_PENDING_DAY)
    run = run_dag("cf_sensor_deferrable", logical_date=LOGICAL_DATE, conf={"day": PENDING_DAY})
    assert task_states(run) == {"wait": "success"}
    assert xcom(run, "wait") == len(emulator.expected_records(DEFAULT_ACCOUNT_ID, PENDING_DAY))
    requests = v2_requests(emulator)
    assert len(requests) == 3
    assert all(entry["query"] == {"from": [PENDING_DAY], "to": ["2025-06-21"]} for entry in requests)
    assert caplog.text.count("running trigger in line") == 1


def test_deferred_sensor_times_out_or_skips_with_soft_fail(emulator: Any, capfd: pytest.CaptureFixture[str]) -> None:
    started = time.monotonic()
    run = run_dag("cf_sensor_deferrable_short", logical_date=LOGICAL_DATE, conf={"day": PENDING_DAY})
    assert task_states(run) == {"wait": "failed", "wait_soft": "skipped"}
    assert time.monotonic() - started < 30
    task_log = capfd.readouterr().out
    assert (
        f"AirflowSensorTimeout: Usage of {PENDING_DAY} for account {DEFAULT_ACCOUNT_ID} was not available" in task_log
    )


def test_deferred_sensor_fails_at_once_when_the_trigger_meets_a_permission_error(
    emulator: Any, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    # The task's own check passes (not yet available); the trigger's first poll is refused.
    emulator.add_fault(route="v2", kind="status", status=403, code=10000, message="Authentication error", nth=2)
    started = time.monotonic()
    run = run_dag("cf_sensor_deferrable", logical_date=LOGICAL_DATE, conf={"day": PENDING_DAY})
    assert task_states(run) == {"wait": "failed"}
    assert [entry["status"] for entry in v2_requests(emulator)] == [200, 403]
    assert time.monotonic() - started < 20
    assert "running trigger in line" in caplog.text
    task_log = capfd.readouterr().out
    # The trigger's error is raised as its own (permanent) class: the task fails without retries.
    assert "CloudflarePermissionError: Waiting for Cloudflare usage of 2025-06-20 failed" in task_log
    assert "HTTP 403 | Cloudflare errors [10000: Authentication error]" in task_log


def test_poke_mode_sensor_waits_for_the_day(emulator: Any) -> None:
    advance_clock_after(emulator, requests=2, seconds=TO_PENDING_DAY)
    run = run_dag(
        "cf_sensor_poke",
        logical_date=LOGICAL_DATE,
        conf={"day": PENDING_DAY, "account_id": DEFAULT_ACCOUNT_ID, "metric": "workers_standard_requests"},
    )
    assert task_states(run) == {"wait": "success"}
    expected = emulator.expected_records(DEFAULT_ACCOUNT_ID, PENDING_DAY, metric="workers_standard_requests")
    assert xcom(run, "wait") == len(expected) > 0
    assert len(v2_requests(emulator)) == 3
    assert reschedules(run, "wait") == 0


@pytest.mark.skipif(
    AIRFLOW_V_3_0_PLUS and not AIRFLOW_V_3_1_PLUS,
    reason="Airflow 3.0's in-process dag.test() supervisor hands a rescheduled sensor its first reschedule "
    "date as a string (TaskRescheduleStartDate.model_construct), so BaseSensorOperator.execute fails with "
    "TypeError on the second try; fixed in 3.1. Real 3.0 workers parse it and are unaffected.",
)
def test_reschedule_mode_sensor_waits_for_the_day(emulator: Any) -> None:
    advance_clock_after(emulator, requests=2, seconds=TO_PENDING_DAY)
    run = run_dag("cf_sensor_reschedule", logical_date=LOGICAL_DATE, conf={"day": PENDING_DAY})
    assert task_states(run) == {"wait": "success"}
    assert xcom(run, "wait") == len(emulator.expected_records(DEFAULT_ACCOUNT_ID, PENDING_DAY))
    assert len(v2_requests(emulator)) == 3
    # Each "not yet" freed the worker: two reschedules, three task runs, one check each.
    assert reschedules(run, "wait") == 2
