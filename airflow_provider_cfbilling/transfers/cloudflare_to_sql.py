"""Cloudflare usage into a SQL table: each window replaced in one transaction, every row keyed.

The data's way: the window is resolved (the usage operators' rules, widened by ``lookback_days``)
-> the table is checked (created, or given the documented columns it lacks) -> the window's
requests are planned and checked -> in one transaction: the window's rows of that account and
source (and metric) are deleted, the fetched records streamed into batched inserts (PostgreSQL
``COPY``, elsewhere ``executemany``), then committed; any failure rolls the table back to what
it was. See ``docs/sql.md`` for the row key, the schema per database and the guarantees.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_cfbilling import usage, validation, windows
from airflow_provider_cfbilling.exceptions import CloudflareInputError
from airflow_provider_cfbilling.transfers._sql_schema import dialect_for, identifier, layout_for
from airflow_provider_cfbilling.version_compat import BaseHook, BaseOperator

if TYPE_CHECKING:
    from airflow_provider_cfbilling.hooks.cloudflare import CloudflareHook

DEFAULT_BATCH_SIZE = 10_000


def _unset(value: Any) -> bool:
    return value is None or value == ""


class CloudflareUsageToSqlOperator(BaseOperator):
    """Land one account's Cloudflare usage for a window into a SQL table, idempotently.

    The window's rows of that account and source (and, with ``metric``, that metric) are replaced
    in one transaction: a re-run leaves the table identical, a restated day's rows are replaced,
    rows outside the window or of another account, source or metric are never touched, and a
    failure (Cloudflare's or the database's) leaves the table exactly as it was. Every row has a
    deterministic key (``row_key``, ``x_RowKey`` with ``key_style="api"``), unique in the table.
    The XCom value is a summary: ``table``, ``account_id``, ``period_start``, ``period_end``
    (exclusive), ``rows_deleted``, ``rows_inserted``, plus ``source``, ``endpoint``, ``metric``,
    ``database``, ``key_style``, ``table_created`` and ``columns_added``.

    :param table: the table (a plain identifier, quoted as given). Created when missing if
        ``create_table``.
    :param sql_conn_id: an Airflow connection whose hook is a common.sql ``DbApiHook``
        (PostgreSQL, SQLite, MySQL, ...). Needs the ``sql`` extra and the database's provider.
    :param source: ``"v2"`` (FOCUS usage, the default) or ``"paygo"``.
    :param schema: the table's schema (PostgreSQL) or attached database (SQLite); default the
        connection's.
    :param create_table: create a missing table, and add documented columns an existing one
        lacks (default True). False: a missing table fails the task before any request.
    :param key_style: column names: ``"snake"`` (default; the SDK's attribute names) or ``"api"``.
    :param cloudflare_conn_id: the ``cloudflare`` connection (default ``cloudflare_default``).
    :param account_id: the account; default the connection's ``extra.account_id``. Templated.
    :param period_start: first UTC day (inclusive). Templated.
    :param period_end: the UTC day after the last (exclusive). Templated. Both default to the
        usage operators' window (the UTC days whose midnight lies in the data interval, else the
        day before the logical date); a run whose interval holds no UTC midnight is skipped.
    :param lookback_days: also replace this many UTC days before the window (restated days).
    :param metric: v2 only: land only this billable metric (``x_BillableMetricId``); the run
        then replaces only that metric's rows. Templated.
    :param paygo_path: PayGo only: which PayGo path (default the connection's, else
        ``billable-usage``). Templated.
    :param organization_id: v2 only: land the usage of every account of this organization
        (default the connection's ``extra.organization_id``); an error together with an explicit
        ``account_id``. The run's scope is then the organization: the ``account_id`` column holds
        the organization id, so the window's rows of that organization are replaced together; each
        row's own account is in ``billing_account_id`` (``BillingAccountId``). Templated.
    :param batch_size: rows per insert batch (default 10,000): what is held in memory at once.
    """

    template_fields: Sequence[str] = (
        "account_id",
        "period_start",
        "period_end",
        "metric",
        "paygo_path",
        "organization_id",
    )
    ui_color = "#f6821f"

    def __init__(
        self,
        *,
        table: str,
        sql_conn_id: str,
        source: str = "v2",
        schema: str | None = None,
        create_table: bool = True,
        key_style: str = "snake",
        cloudflare_conn_id: str = "cloudflare_default",
        account_id: str | None = None,
        period_start: Any = None,
        period_end: Any = None,
        lookback_days: int = 0,
        metric: str | None = None,
        paygo_path: str | None = None,
        organization_id: str | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        validation.usage_arguments(source, metric, paygo_path)
        validation.key_style(key_style)
        if not isinstance(sql_conn_id, str) or not sql_conn_id:
            raise CloudflareInputError(
                "sql_conn_id", f"{sql_conn_id!r} is not a connection id", "Pass the id of a SQL database connection"
            )
        validation.flag(create_table, "create_table")
        validation.whole_number(batch_size, "batch_size", minimum=1, fix="Use e.g. batch_size=10000")
        self.table = identifier(table, "table")
        self.schema = None if _unset(schema) else identifier(schema, "schema")
        self.sql_conn_id = sql_conn_id
        self.source = source
        self.create_table = create_table
        self.key_style = key_style
        self.cloudflare_conn_id = cloudflare_conn_id
        self.account_id = account_id
        self.period_start = period_start
        self.period_end = period_end
        self.lookback_days = validation.whole_number(
            lookback_days, "lookback_days", minimum=0, unit="days", fix="Use lookback_days=7 to re-land the last week"
        )
        self.metric = metric
        self.paygo_path = paygo_path
        self.organization_id = organization_id
        self.batch_size = batch_size

    # -- what the task is given --------------------------------------------------------------

    def _window(self, context: Any) -> windows.Window:
        window = windows.resolve_window(self.period_start, self.period_end, context)
        return windows.Window(window.start - dt.timedelta(days=self.lookback_days), window.end)

    def get_hook(self) -> CloudflareHook:
        from airflow_provider_cfbilling.hooks.cloudflare import CloudflareHook

        return CloudflareHook(self.cloudflare_conn_id)

    def get_db_hook(self) -> Any:
        """The ``sql_conn_id`` connection's hook, if it is a common.sql ``DbApiHook`` (else bad input)."""
        try:
            from airflow.providers.common.sql.hooks.sql import DbApiHook
        except ImportError:
            raise CloudflareInputError(
                "sql_conn_id",
                "the SQL landing needs Airflow's common.sql provider, which is not installed",
                "Install airflow-provider-cfbilling[sql] and the provider of your database",
            ) from None
        try:
            connection = BaseHook.get_connection(self.sql_conn_id)
        except Exception as error:
            if type(error).__name__ != "AirflowNotFoundException":
                raise
            raise CloudflareInputError(
                "sql_conn_id", f"there is no connection {self.sql_conn_id!r}", "Define it, or fix the id"
            ) from None
        try:
            hook = connection.get_hook()
        except Exception as error:
            raise CloudflareInputError(
                "sql_conn_id",
                f"connection {self.sql_conn_id!r} (type {connection.conn_type!r}) gives no hook: {error}",
                "Install the Airflow provider of that database (e.g. apache-airflow-providers-postgres)",
            ) from None
        if not isinstance(hook, DbApiHook):
            raise CloudflareInputError(
                "sql_conn_id",
                f"connection {self.sql_conn_id!r} (type {connection.conn_type!r}) gives a "
                f"{type(hook).__module__}.{type(hook).__name__}, which is not a common.sql DbApiHook",
                "Use a SQL database connection (postgres, sqlite, mysql, mssql, snowflake, ...) whose provider "
                "is installed",
            )
        return hook

    # -- the run -------------------------------------------------------------------------------

    def _scope(self, hook: CloudflareHook) -> tuple[str, str | None]:
        """Whose usage: ``(scope id, organization id or None)``; checked before any request."""
        scope = hook.resolve_usage_scope(
            None if _unset(self.account_id) else self.account_id,
            None if _unset(self.organization_id) else self.organization_id,
            source=self.source,
        )
        return scope.id, scope.organization_id

    def _plan(
        self, hook: CloudflareHook, account_id: str, window: windows.Window, organization_id: str | None = None
    ) -> usage.UsagePlan:
        if organization_id:
            return usage.plan_organization(hook, organization_id, window, self.metric or None)
        if self.source == "v2":
            return usage.plan_v2(hook, account_id, window, self.metric or None)
        return usage.plan_paygo(hook, account_id, window, self.paygo_path or None)

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow_provider_cfbilling.transfers._sql_load import SqlSession
        from airflow_provider_cfbilling.transfers._sql_rows import RowBuilder

        window = self._window(context)
        cloudflare = self.get_hook()
        account_id, organization_id = self._scope(cloudflare)
        db_hook = self.get_db_hook()
        dialect = dialect_for(_dialect_name(db_hook))
        layout = layout_for(self.source, self.key_style)
        metric = (self.metric or None) if self.source == "v2" else None
        qualified = f"{self.schema}.{self.table}" if self.schema else self.table
        self.log.info(
            "Landing %s usage of %s %s for [%s, %s)%s into %s (%s)",
            self.source,
            "organization" if organization_id else "account",
            account_id,
            window.start,
            window.end,
            f", metric {metric}" if metric else "",
            qualified,
            dialect.name,
        )
        connection = db_hook.get_conn()
        placeholder = getattr(db_hook, "placeholder", None) or "%s"
        with cloudflare:
            try:
                session = SqlSession(connection, dialect, placeholder, layout, self.table, self.schema, self.log)
            except BaseException:
                connection.close()
                raise
            with session:
                state = session.prepare(self.create_table)
                # Checked (and for PayGo's anchor rule, asked) only once the table is known good.
                plan = self._plan(cloudflare, account_id, window, organization_id)
                deleted = session.delete_window(account_id, window, metric)
                builder = RowBuilder(layout, dialect, state.columns, account_id, plan.path)
                inserted = session.insert(builder, plan.records(self.log), self.batch_size)
                session.commit()
        start, end = window.as_strings()
        self.log.info("Replaced %d rows with %d in %s for [%s, %s)", deleted, inserted, qualified, start, end)
        _report_lineage(db_hook, dialect.name, self.table, self.schema, self.log)
        return {
            "table": qualified,
            "account_id": account_id,
            "period_start": start,
            "period_end": end,
            "rows_deleted": deleted,
            "rows_inserted": inserted,
            **({"organization_id": organization_id} if organization_id else {}),
            "source": self.source,
            "endpoint": plan.path,
            "metric": metric,
            "database": dialect.name,
            "key_style": self.key_style,
            "table_created": state.created,
            "columns_added": state.added_columns,
        }


def _dialect_name(hook: Any) -> str | None:
    try:
        name = hook.dialect_name
    except Exception:  # an older common.sql, or a hook whose URI SQLAlchemy cannot parse
        name = None
    return name if isinstance(name, str) and name != "default" else getattr(hook, "conn_type", None)


def table_uri(hook: Any, dialect_name: str, table: str, schema: str | None) -> str:
    """The table as an asset URI: ``postgres://host:port/database/schema/table`` (the postgres
    provider's form), ``sqlite://localhost/<file path>/<schema>/table``, else
    ``<dialect>://host[:port]/database/schema/table``."""
    connection = hook.connection if hasattr(hook, "connection") else hook.get_connection(hook.get_conn_id())
    host = connection.host or ""
    if dialect_name == "postgresql":
        database = getattr(hook, "database", None) or connection.schema or "postgres"
        return f"postgres://{host}:{connection.port or 5432}/{database}/{schema or 'public'}/{table}"
    if dialect_name == "sqlite":
        return f"sqlite://localhost/{host.lstrip('/')}/{schema or 'main'}/{table}"
    authority = f"{host}:{connection.port}" if connection.port else host
    parts = [part for part in (connection.schema, schema, table) if part]
    return f"{dialect_name}://{authority}/{'/'.join(parts)}"


def _report_lineage(hook: Any, dialect_name: str, table: str, schema: str | None, logger: Any) -> None:
    """The table as hook-level lineage output; best effort: the data is committed, never fail for it."""
    try:
        from airflow_provider_cfbilling.version_compat import report_output_asset

        report_output_asset(hook, table_uri(hook, dialect_name, table, schema))
    except Exception:
        logger.warning("Could not report the table as lineage output", exc_info=True)


__all__ = ["CloudflareUsageToSqlOperator", "table_uri"]
