"""The example DAGs parse cleanly and fast, do nothing at parse time, and give every scheduled run
(and every backfill run) a one-UTC-day window whose partition name is that same day."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from typing import Any

import pendulum
import pytest
from harness import EXAMPLE_DAGS, dag_bag, scheduler_dag

from airflow_provider_cfbilling import windows
from airflow_provider_cfbilling.partitions import parse_destination
from airflow_provider_cfbilling.version_compat import AIRFLOW_V_3_0_PLUS

EXPECTED_TASKS = {
    "cloudflare_usage_daily": {"wait_for_usage", "land_usage", "report"},
    "cloudflare_paygo_billing_period": {"billing_period", "land_paygo", "report"},
    "cloudflare_billing_profile_snapshot": {"snapshot_profile", "report"},
    "cloudflare_usage_many_accounts": {"wait_for_usage", "plan_accounts", "land_usage", "report"},
    "cloudflare_usage_to_sql": {"wait_for_usage", "land_usage", "report"},
    "cloudflare_monthly_bill": {"land_usage", "land_subscriptions", "land_billing_history"},
}
DAY_PARTITIONED = ("cloudflare_usage_daily", "cloudflare_usage_many_accounts")


@pytest.fixture(scope="module")
def bag() -> Any:
    return dag_bag(EXAMPLE_DAGS)


def test_every_example_dag_imports_without_errors(bag: Any) -> None:
    assert bag.import_errors == {}
    assert set(bag.dag_ids) == set(EXPECTED_TASKS)
    for dag_id, task_ids in EXPECTED_TASKS.items():
        dag = bag.dags[dag_id]
        assert set(dag.task_dict) == task_ids, dag_id
        assert dag.doc_md and dag.doc_md.strip(), f"{dag_id} has no documentation"
        assert dag.catchup is False


def test_parsing_makes_no_request(emulator: Any, cloudflare_conn: dict[str, Any]) -> None:
    bag = dag_bag(EXAMPLE_DAGS)
    assert bag.import_errors == {}
    assert emulator.request_log == []
    # Variables and connections stay templates until a task runs.
    daily = bag.dags["cloudflare_usage_daily"].task_dict["land_usage"]
    assert "{{ var.value.get('cloudflare_lake_root'" in daily.destination
    # The account and the day are placeholders the operator fills from the window it fetched.
    assert "/account_id={account_id}/charge_date={charge_date}/" in daily.destination


def test_the_many_accounts_dag_maps_one_task_per_account_inside_the_pool(bag: Any) -> None:
    dag = bag.dags["cloudflare_usage_many_accounts"]
    land = dag.task_dict["land_usage"]
    assert is_mapped(land)
    assert {task.pool for task in dag.tasks} == {"cloudflare_api"}
    assert dag.task_dict["report"].trigger_rule == "all_done"
    assert dag.task_dict["wait_for_usage"].deferrable
    assert bag.dags["cloudflare_usage_daily"].task_dict["wait_for_usage"].deferrable


def is_mapped(task: Any) -> bool:
    """``task`` is a ``MappedOperator`` (Airflow 2 operators have no ``is_mapped``)."""
    return hasattr(task, "partial_kwargs")


def field(task: Any, name: str) -> Any:
    """A constructor argument of a task, mapped or not."""
    return task.partial_kwargs[name] if is_mapped(task) else getattr(task, name)


def render(template: str, dag: Any, **context: Any) -> str:
    """Render a task's template with a run's context; Variables and connections at their defaults."""
    accessors = {
        "var": {"value": SimpleNamespace(get=lambda key, default=None: default)},
        "conn": {"cloudflare_default": SimpleNamespace(extra_dejson={"account_id": "0" * 32})},
    }
    return dag.get_template_env().from_string(template).render(**accessors, **context)


@pytest.mark.parametrize("dag_id", DAY_PARTITIONED)
def test_scheduled_and_backfill_runs_each_land_their_own_day_under_its_own_name(bag: Any, dag_id: str) -> None:
    dag = bag.dags[dag_id]
    # What `airflow backfill create --from-date 2025-06-01 --to-date 2025-06-04` (and the scheduler) creates.
    infos = list(
        scheduler_dag(dag).iter_dagrun_infos_between(
            pendulum.datetime(2025, 6, 1, tz="UTC"), pendulum.datetime(2025, 6, 4, tz="UTC")
        )
    )
    days = [dt.date(2025, 6, 1) + dt.timedelta(days=offset) for offset in range(4)]
    assert [info.logical_date.date() for info in infos] == days
    land = dag.task_dict["land_usage"]
    for day, info in zip(days, infos, strict=True):
        context = {
            "data_interval_start": info.data_interval.start,
            "data_interval_end": info.data_interval.end,
            "logical_date": info.logical_date,
        }
        # The operators' default window: no explicit one, so the name cannot disagree with it.
        explicit = land.partial_kwargs if is_mapped(land) else vars(land)
        assert explicit.get("period_start") is None and explicit.get("period_end") is None
        window = windows.resolve_window(None, None, context)
        assert window == windows.Window(day, day + dt.timedelta(days=1))
        # The partition is named by the operator from that window, after Jinja.
        template = parse_destination(render(field(land, "destination"), dag, **context))
        assert template.per_day
        destination = template.render({"account_id": "0" * 32}, window, window.start)
        assert f"/account_id={'0' * 32}/charge_date={day}/usage.jsonl" in destination
        assert dag.task_dict["wait_for_usage"].day is None
        assert windows.resolve_day(None, context) == day


def test_the_sql_example_replaces_each_runs_day_and_the_week_before_it(bag: Any) -> None:
    dag = bag.dags["cloudflare_usage_to_sql"]
    land = dag.task_dict["land_usage"]
    assert (land.period_start, land.period_end, land.lookback_days) == (None, None, 7)
    assert (land.sql_conn_id, land.table, land.source, land.key_style) == (
        "cloudflare_usage_db",
        "cloudflare_usage",
        "v2",
        "snake",
    )
    infos = list(
        scheduler_dag(dag).iter_dagrun_infos_between(
            pendulum.datetime(2025, 6, 1, tz="UTC"), pendulum.datetime(2025, 6, 2, tz="UTC")
        )
    )
    for info in infos:
        day = info.logical_date.date()
        context = {"data_interval_start": info.data_interval.start, "data_interval_end": info.data_interval.end}
        assert land._window(context) == windows.Window(day - dt.timedelta(days=7), day + dt.timedelta(days=1))


@pytest.mark.skipif(not AIRFLOW_V_3_0_PLUS, reason="on Airflow 2 '@daily' has one-day data intervals")
def test_why_not_a_plain_daily_cron_on_airflow_3() -> None:
    """``schedule="@daily"`` is a CronTriggerTimetable on Airflow 3: an empty data interval, so the
    operators fall back to the day before the logical date, which ``data_interval_start`` does not name."""
    from airflow.sdk import DAG

    with DAG("plain_daily", schedule="@daily", start_date=pendulum.datetime(2025, 1, 1, tz="UTC")) as dag:
        pass
    (info,) = scheduler_dag(dag).iter_dagrun_infos_between(
        pendulum.datetime(2025, 6, 2, tz="UTC"), pendulum.datetime(2025, 6, 2, tz="UTC")
    )
    assert info.data_interval.start == info.data_interval.end == info.logical_date
    context = {"data_interval_start": info.data_interval.start, "data_interval_end": info.data_interval.end}
    context["logical_date"] = info.logical_date
    assert windows.resolve_window(None, None, context).start == dt.date(2025, 6, 1)
    assert render("{{ data_interval_start | ds }}", dag, **context) == "2025-06-02"
