"""Bad input fails before any request: at construction where the value is known then (DAG parse
time), else when the task starts; always a ``CloudflareInputError`` (no Airflow retries) that
names the parameter and says what to do instead, and the emulator sees no request."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sql_support import TABLE, Database

from airflow_provider_cfbilling.exceptions import CloudflareInputError
from airflow_provider_cfbilling.transfers.cloudflare_to_sql import CloudflareUsageToSqlOperator
from airflow_provider_cfbilling.version_compat import AirflowFailException

pytestmark = pytest.mark.usefixtures("cloudflare_conn")

WEEK = {"period_start": "2025-06-10", "period_end": "2025-06-17"}


def operator(**kwargs: Any) -> CloudflareUsageToSqlOperator:
    return CloudflareUsageToSqlOperator(
        **{"task_id": "land", "sql_conn_id": "cfb_sql_sqlite", "table": TABLE, **kwargs}
    )


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"source": "focus"}, r"source: 'focus' is not a usage source\. Use source='v2'.*or source='paygo'"),
        ({"source": "billable-usage"}, r"source: .*pick its path with paygo_path"),
        ({"table": "usage; DROP TABLE x"}, r"table: .* is not a plain SQL identifier"),
        ({"table": "billing.usage"}, r"table: 'billing.usage' is not a plain SQL identifier"),
        ({"schema": "my schema"}, r"schema: 'my schema' is not a plain SQL identifier"),
        ({"key_style": "camel"}, r"key_style: 'camel' is not a key style"),
        ({"lookback_days": -1}, r"lookback_days: -1 is not a whole number of days"),
        ({"lookback_days": "7"}, r"lookback_days: '7' is not a whole number of days"),
        (
            {"source": "paygo", "metric": "workers_standard_requests"},
            r"metric: the PayGo endpoints have no metric filter",
        ),
        ({"paygo_path": "billable-usage"}, r"paygo_path: .*source is 'v2'"),
        ({"source": "paygo", "paygo_path": "usage"}, r"paygo_path: 'usage' is not a PayGo path"),
        ({"sql_conn_id": ""}, r"sql_conn_id: '' is not a connection id"),
        ({"create_table": "yes"}, r"create_table: 'yes' is not a boolean"),
        ({"batch_size": 0}, r"batch_size: 0 is not a whole number"),
    ],
)
def test_bad_arguments_fail_at_construction(emulator: Any, arguments: dict[str, Any], message: str) -> None:
    with pytest.raises(CloudflareInputError, match=message) as raised:
        operator(**{**WEEK, **arguments})
    assert isinstance(raised.value, AirflowFailException)  # fails the task without retries
    assert emulator.request_log == []


def test_templated_fields_are_the_window_account_metric_path_and_organization() -> None:
    assert set(CloudflareUsageToSqlOperator.template_fields) == {
        "account_id",
        "period_start",
        "period_end",
        "metric",
        "paygo_path",
        "organization_id",
    }


def run(task: CloudflareUsageToSqlOperator, emulator: Any) -> CloudflareInputError:
    with pytest.raises(CloudflareInputError) as raised:
        task.execute({})
    assert emulator.request_log == []
    return raised.value


@pytest.mark.parametrize(
    ("conn_id", "connection", "found"),
    [
        ("cloudflare_default", None, "airflow_provider_cfbilling.hooks.cloudflare.CloudflareHook"),
        ("cfb_http", {"conn_type": "http", "host": "example.invalid"}, "airflow.providers.http.hooks.http.HttpHook"),
    ],
)
def test_a_connection_whose_hook_is_no_dbapihook_fails_before_any_request(
    emulator: Any, monkeypatch: pytest.MonkeyPatch, conn_id: str, connection: Any, found: str
) -> None:
    if connection:
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(connection))
    error = run(operator(sql_conn_id=conn_id, **WEEK), emulator)
    assert error.parameter == "sql_conn_id"
    assert f"gives a {found}, which is not a common.sql DbApiHook" in str(error)
    assert "Use a SQL database connection (postgres, sqlite" in str(error)


def test_an_undefined_connection_fails_before_any_request(emulator: Any) -> None:
    error = run(operator(sql_conn_id="cfb_nowhere", **WEEK), emulator)
    assert str(error).startswith("sql_conn_id: there is no connection 'cfb_nowhere'")


def test_a_missing_table_without_create_table_fails_before_any_request(emulator: Any, database: Database) -> None:
    error = run(operator(sql_conn_id=database.conn_id, create_table=False, **WEEK), emulator)
    assert error.parameter == "table" and "does not exist" in str(error) and "create_table=True" in str(error)
    assert not database.exists()


@pytest.mark.parametrize(
    ("arguments", "parameter"),
    [
        ({"period_start": "2025-06-10"}, "period_end"),
        ({"period_start": "2025-06-10T05:00:00+00:00", "period_end": "2025-06-11"}, "period_start"),
        ({**WEEK, "account_id": "acme"}, "account_id"),
        ({"period_start": "2025-05-01", "period_end": "2025-04-01"}, "period_end"),
    ],
)
def test_a_bad_window_or_account_fails_before_any_request(
    emulator: Any, sqlite_db: Database, arguments: dict[str, Any], parameter: str
) -> None:
    assert run(operator(**arguments), emulator).parameter == parameter
    assert not sqlite_db.exists()  # nothing was created either
