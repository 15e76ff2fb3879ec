"""The SQL landing's guarantees in detail, with the operator's ``execute`` called directly (no task
runner: fast) against the emulator and real databases: metric and account scoping, key styles,
schema changes, the PostgreSQL fast path with both drivers, shared row identities, lineage."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

import pytest
from sql_support import OTHER_ACCOUNT, TABLE, Database, day, expected, sorted_records

from airflow_provider_cfbilling.emulator import DEFAULT_ACCOUNT_ID
from airflow_provider_cfbilling.exceptions import CloudflareInputError
from airflow_provider_cfbilling.transfers._sql_keys import RowKeys
from airflow_provider_cfbilling.transfers._sql_load import SqlSession
from airflow_provider_cfbilling.transfers._sql_rows import RowBuilder
from airflow_provider_cfbilling.transfers._sql_schema import POSTGRES, SQLITE, layout_for
from airflow_provider_cfbilling.transfers.cloudflare_to_sql import CloudflareUsageToSqlOperator
from airflow_provider_cfbilling.version_compat import AirflowSkipException

pytestmark = pytest.mark.usefixtures("cloudflare_conn")

WEEK = {"period_start": "2025-06-10", "period_end": "2025-06-17"}
METRIC = "workers_standard_requests"


def land(database: Database, **kwargs: Any) -> dict[str, Any]:
    arguments = {"task_id": "land", "sql_conn_id": database.conn_id, "table": TABLE, **WEEK, **kwargs}
    return CloudflareUsageToSqlOperator(**arguments).execute({})


def key_counts(database: Database, table: str = TABLE, key: str = "row_key") -> Counter[str]:
    return Counter(row[0] for row in database.execute(f'SELECT "{key}" FROM "{table}"'))


def test_a_metric_run_replaces_only_that_metrics_rows(emulator: Any, database: Database) -> None:
    land(database)
    everything = database.by_key()
    emulator.restate(DEFAULT_ACCOUNT_ID, "2025-06-12", factor=2, corrections=0)
    summary = land(database, metric=METRIC)
    metric_rows = [row for row in everything.values() if row["x_billable_metric_id"] == METRIC]
    assert summary["rows_deleted"] == len(metric_rows) == summary["rows_inserted"]
    after = database.by_key()
    assert set(after) == set(everything)  # same keys: the filter is no part of a row's identity
    changed = {key for key in after if after[key] != everything[key]}
    assert changed and {after[key]["x_billable_metric_id"] for key in changed} == {METRIC}
    # A run of every metric brings the rest up to date; then the table is what the API serves.
    land(database)
    assert database.records() == expected(emulator, DEFAULT_ACCOUNT_ID, day("2025-06-10"), day("2025-06-17"))


def test_overlapping_runs_never_duplicate_a_row(emulator: Any, database: Database) -> None:
    land(database, period_start="2025-06-01", period_end="2025-06-08")
    land(database, period_start="2025-06-05", period_end="2025-06-12", account_id=OTHER_ACCOUNT)
    land(database, period_start="2025-06-05", period_end="2025-06-12")
    emulator.restate(DEFAULT_ACCOUNT_ID, "2025-06-06", corrections=3)
    land(database, period_start="2025-06-06", period_end="2025-06-07")
    land(database, period_start="2025-06-03", period_end="2025-06-09", metric=METRIC)
    assert max(key_counts(database).values()) == 1
    assert database.records(account_id=DEFAULT_ACCOUNT_ID) == expected(
        emulator, DEFAULT_ACCOUNT_ID, day("2025-06-01"), day("2025-06-12")
    )
    assert database.records(account_id=OTHER_ACCOUNT) == expected(
        emulator, OTHER_ACCOUNT, day("2025-06-05"), day("2025-06-12")
    )


def test_api_key_style_names_every_column_like_the_api(emulator: Any, database: Database) -> None:
    summary = land(database, key_style="api", table="usage_api")
    columns = database.columns("usage_api")
    assert columns[:3] == ["x_RowKey", "x_AccountId", "x_Source"] and columns[-1] == "x_ExtraFields"
    assert "ChargePeriodStart" in columns and "x_BillableMetricId" in columns
    assert summary["rows_inserted"] == len(database.rows("usage_api", key="x_RowKey"))
    assert database.records("usage_api", key_style="api") == expected(
        emulator, DEFAULT_ACCOUNT_ID, day("2025-06-10"), day("2025-06-17")
    )
    # The same rows get the same keys in either style.
    land(database, table="usage_snake")
    assert set(key_counts(database, "usage_api", "x_RowKey")) == set(key_counts(database, "usage_snake"))


def test_paygo_lands_every_path_into_one_schema(emulator: Any, database: Database) -> None:
    summary = land(database, source="paygo", table="paygo")  # billable-usage: anchor-day requests
    assert summary["endpoint"].endswith("/billable-usage")
    want = expected(emulator, DEFAULT_ACCOUNT_ID, day("2025-06-10"), day("2025-06-17"), source="billable-usage")
    assert database.records("paygo", source="paygo") == want
    beta = land(database, source="paygo", table="paygo", paygo_path="billing/usage/paygo")
    assert beta["rows_deleted"] == len(want) and beta["columns_added"] == []
    assert database.records("paygo", source="paygo") == expected(
        emulator, DEFAULT_ACCOUNT_ID, day("2025-06-10"), day("2025-06-17"), source="paygo"
    )


def test_a_documented_column_the_table_lacks_is_added_or_its_values_kept_as_json(
    emulator: Any, database: Database
) -> None:
    land(database)
    database.execute(f'ALTER TABLE "{TABLE}" DROP COLUMN "x_zone_name"')
    kept = land(database, create_table=False)  # no DDL: the zone names go to the JSON column
    assert kept["columns_added"] == []
    assert database.records() == expected(emulator, DEFAULT_ACCOUNT_ID, day("2025-06-10"), day("2025-06-17"))
    assert any("x_zone_name" in str(row["extra_fields"]) for row in database.by_key().values())
    added = land(database)  # create_table=True adds it back, typed, and the rows use it
    assert added["columns_added"] == ["x_zone_name"] and added["table_created"] is False
    assert "x_zone_name" in database.columns()
    assert not any(row["extra_fields"] for row in database.by_key().values())
    assert database.records() == expected(emulator, DEFAULT_ACCOUNT_ID, day("2025-06-10"), day("2025-06-17"))


def test_a_table_of_the_other_key_style_is_refused_before_any_request(emulator: Any, database: Database) -> None:
    land(database)
    before = database.rows()
    emulator.clear_request_log()
    with pytest.raises(CloudflareInputError, match=r"has no column x_RowKey, x_AccountId.*key_style=snake"):
        land(database, key_style="api")
    assert emulator.request_log == []
    assert database.rows() == before


def test_an_empty_data_interval_skips_without_a_request_or_a_table(emulator: Any, database: Database) -> None:
    operator = CloudflareUsageToSqlOperator(task_id="land", sql_conn_id=database.conn_id, table=TABLE)
    hour = dt.datetime(2025, 6, 10, 5, tzinfo=dt.timezone.utc)
    with pytest.raises(AirflowSkipException, match="holds no UTC midnight"):
        operator.execute({"data_interval_start": hour, "data_interval_end": hour + dt.timedelta(hours=1)})
    assert emulator.request_log == [] and not database.exists()


def test_a_postgres_schema_is_honoured(emulator: Any, postgres_db: Database) -> None:
    postgres_db.execute("CREATE SCHEMA billing")
    summary = land(postgres_db, schema="billing")
    assert summary["table"] == f"billing.{TABLE}"
    count = postgres_db.execute(f'SELECT COUNT(*) FROM billing."{TABLE}"')[0][0]
    assert count == summary["rows_inserted"] and not postgres_db.exists()  # nothing in public


# --------------------------------------------------------------------------------------------
# The transaction itself, fed records directly
# --------------------------------------------------------------------------------------------


def _session(database: Database, connection: Any, table: str = TABLE) -> SqlSession:
    dialect, placeholder = (POSTGRES, "%s") if database.kind == "postgres" else (SQLITE, "?")
    return SqlSession(connection, dialect, placeholder, layout_for("v2", "snake"), table, None)


def _raw_connection(database: Database, driver: str) -> Any:
    if database.kind == "sqlite":
        import sqlite3

        return sqlite3.connect(database.path)
    if driver in ("psycopg2", "any"):
        return database.server.connect(database.dbname, autocommit=False)
    import psycopg

    return psycopg.connect(
        host=database.server.host, port=database.server.port, user="postgres", dbname=database.dbname
    )


SHARED: list[dict[str, Any]] = [  # two identical corrections, and three regular rows that share every identifying field
    *[{"ChargePeriodStart": "2025-06-10T00:00:00Z", "x_BillableMetricId": "a", "ChargeClass": "Correction"}] * 2,
    *(
        {"ChargePeriodStart": "2025-06-10T00:00:00Z", "x_BillableMetricId": "b", "ConsumedQuantity": q}
        for q in (3, 1, 2)
    ),
    {"ChargePeriodStart": "2025-06-11T00:00:00Z", "x_BillableMetricId": "c", "ConsumedQuantity": 7},
]


@pytest.mark.parametrize(("kind", "driver"), [("postgres", "psycopg2"), ("postgres", "psycopg"), ("sqlite", "sqlite3")])
def test_rows_that_share_an_identity_are_keyed_by_content_in_the_database(
    request: pytest.FixtureRequest, kind: str, driver: str
) -> None:
    database: Database = request.getfixturevalue(f"{kind}_db")
    layout = layout_for("v2", "snake")
    key_sets = []
    for records in (SHARED, SHARED[::-1]):
        with _session(database, _raw_connection(database, driver)) as session:
            columns = session.prepare(create_table=True).columns
            session.delete_window(DEFAULT_ACCOUNT_ID, _window("2025-06-10", "2025-06-12"), None)
            builder = RowBuilder(layout, session.dialect, columns, DEFAULT_ACCOUNT_ID, "/test")
            assert session.insert(builder, records, batch_size=2) == len(records)
            session.commit()
        keys = key_counts(database)
        assert max(keys.values()) == 1 and len(keys) == len(SHARED)
        key_sets.append(set(keys))
        assert database.records() == sorted_records(SHARED)
    assert key_sets[0] == key_sets[1]  # the same keys whatever the order
    # The one record with an identity of its own is keyed by it alone.
    alone = RowKeys("v2", DEFAULT_ACCOUNT_ID).key(SHARED[-1])
    assert alone in key_sets[0]


def _window(start: str, end: str) -> Any:
    from airflow_provider_cfbilling.windows import Window

    return Window(day(start), day(end))


def test_nothing_is_committed_when_the_stream_fails(database: Database) -> None:
    def failing() -> Any:
        yield from SHARED[2:5]
        raise RuntimeError("the API went away")

    with pytest.raises(RuntimeError, match="went away"), _session(database, _raw_connection(database, "any")) as s:
        columns = s.prepare(create_table=True).columns
        s.insert(RowBuilder(layout_for("v2", "snake"), s.dialect, columns, DEFAULT_ACCOUNT_ID, "/t"), failing(), 1)
    assert not database.exists()  # even the table: its creation was part of the transaction


# --------------------------------------------------------------------------------------------
# Lineage
# --------------------------------------------------------------------------------------------


@pytest.fixture
def lineage_collector(monkeypatch: pytest.MonkeyPatch) -> Any:
    """A real hook-lineage collector in place of the no-op one Airflow uses without a reader."""
    from harness import hook_lineage_module

    lineage = hook_lineage_module()
    collector = lineage.HookLineageCollector()
    monkeypatch.setattr(lineage, "get_hook_lineage_collector", lambda: collector)
    return collector


def test_the_table_is_reported_as_lineage_output(emulator: Any, database: Database, lineage_collector: Any) -> None:
    from harness import lineage_outputs

    land(database)
    if database.kind == "postgres":
        server = database.server
        want = f"postgres://{server.host}:{server.port}/{database.dbname}/public/{TABLE}"
    else:
        want = f"sqlite://localhost{database.path}/main/{TABLE}"
    assert [uri for uri, _count in lineage_outputs(lineage_collector)] == [want]


def test_an_organization_lands_every_account_in_its_own_scope(emulator: Any, database: Database) -> None:
    from airflow_provider_cfbilling.emulator import DEFAULT_ORGANIZATION_ACCOUNTS, DEFAULT_ORGANIZATION_ID

    land(database)  # one account's own rows, which the organization's runs must leave alone
    own = database.by_key()
    summary = land(database, organization_id=DEFAULT_ORGANIZATION_ID)
    assert summary["organization_id"] == summary["account_id"] == DEFAULT_ORGANIZATION_ID
    everything = database.by_key()
    organization_rows = {key: row for key, row in everything.items() if key not in own}
    assert {row["account_id"] for row in organization_rows.values()} == {DEFAULT_ORGANIZATION_ID}
    assert {row["billing_account_id"] for row in organization_rows.values()} == set(DEFAULT_ORGANIZATION_ACCOUNTS)
    wanted = [
        record
        for offset in range(7)
        for record in emulator.expected_organization_records(
            DEFAULT_ORGANIZATION_ID, day("2025-06-10") + dt.timedelta(days=offset)
        )
    ]
    assert len(organization_rows) == summary["rows_inserted"] == len(wanted)
    # A re-run replaces exactly the organization's rows: the table is identical.
    again = land(database, organization_id=DEFAULT_ORGANIZATION_ID)
    assert again["rows_deleted"] == again["rows_inserted"] == len(wanted)
    assert database.by_key() == everything
    with pytest.raises(CloudflareInputError, match="both"):
        land(database, organization_id=DEFAULT_ORGANIZATION_ID, account_id=DEFAULT_ACCOUNT_ID)
