"""The bad-input table: one row per mistake a DAG author or an admin can make.

``test_reliability_bad_input.py`` runs every row and ``docs/reliability.md`` shows the table
rendered from this data (``python tests/reliability/reliability_bad_inputs.py`` prints it).

A row says what is wrong (``kwargs`` for the target, ``connection`` changes to the
``cloudflare_default`` connection), which parameter the error must name, a fragment of the fix the
error must give, and where the mistake is caught: ``parse`` (the operator's constructor, i.e. when
the DAG file is parsed) or ``run`` (when the task starts, before any request).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

DROP = object()  # in ``connection``: remove the field


@dataclass(frozen=True)
class BadInput:
    id: str
    target: str  # v2, paygo, profile, sensor, hook-v2, hook-paygo
    mistake: str  # for the docs
    parameter: str  # must appear in the error (CloudflareInputError.parameter, else the message)
    fix: str  # a fragment of the fix the error must give (case-insensitive)
    caught: str  # parse or run
    kwargs: dict[str, Any] = field(default_factory=dict)
    connection: dict[str, Any] = field(default_factory=dict)  # top-level fields; "extra" is merged


PLUS_TWO = dt.timezone(dt.timedelta(hours=2))

CASES: tuple[BadInput, ...] = (
    # ---- accounts
    BadInput(
        "account-name",
        "v2",
        "`account_id='acme-prod'`",
        "account_id",
        "32 hexadecimal characters",
        "run",
        {"account_id": "acme-prod"},
    ),
    BadInput(
        "account-uuid",
        "v2",
        "`account_id` written as a UUID with dashes",
        "account_id",
        "32 hexadecimal characters",
        "run",
        {"account_id": "023e105f-4ece-f8ad-9ca3-1a8372d0c353"},
    ),
    BadInput(
        "account-short",
        "paygo",
        "`account_id` one character short",
        "account_id",
        "32 hexadecimal characters",
        "run",
        {"account_id": "023e105f4ecef8ad9ca31a8372d0c35"},
    ),
    BadInput(
        "account-nowhere",
        "profile",
        "no `account_id` on the task or the connection",
        "account_id",
        "set extra.account_id",
        "run",
        connection={"extra": {"account_id": DROP}},
    ),
    # ---- windows
    BadInput(
        "window-reversed",
        "v2",
        "reversed window: `period_start='2025-06-12'`, `period_end='2025-06-10'`",
        "period_end",
        "day after the last day",
        "run",
        {"period_start": "2025-06-12", "period_end": "2025-06-10"},
    ),
    BadInput(
        "window-empty",
        "paygo",
        "empty window: `period_start == period_end`",
        "period_end",
        "day after the last day",
        "run",
        {"period_start": "2025-06-10", "period_end": "2025-06-10"},
    ),
    BadInput(
        "window-half",
        "v2",
        "only `period_start` given",
        "period_end",
        "give both period_start and period_end",
        "run",
        {"period_start": "2025-06-10", "period_end": None},
    ),
    BadInput(
        "window-timestamp",
        "v2",
        "timestamp where a day belongs: `period_start='2025-06-10T13:45:00Z'`",
        "period_start",
        "pass dates",
        "run",
        {"period_start": "2025-06-10T13:45:00Z"},
    ),
    BadInput(
        "window-naive",
        "paygo",
        "naive `datetime(2025, 6, 10)` (no time zone)",
        "period_start",
        "timezone-aware datetime at 00:00 UTC",
        "run",
        {"period_start": dt.datetime(2025, 6, 10)},
    ),
    BadInput(
        "window-local-midnight",
        "v2",
        "midnight in UTC+2 (`2025-06-10T00:00+02:00`, i.e. 22:00 UTC)",
        "period_start",
        "pass dates",
        "run",
        {"period_start": dt.datetime(2025, 6, 10, tzinfo=PLUS_TWO)},
    ),
    BadInput(
        "window-format",
        "v2",
        "unknown date format `'10/06/2025'`",
        "period_start",
        "YYYY-MM-DD",
        "run",
        {"period_start": "10/06/2025"},
    ),
    BadInput(
        "window-impossible",
        "paygo",
        "impossible date `period_end='2025-02-30'`",
        "period_end",
        "YYYY-MM-DD",
        "run",
        {"period_start": "2025-02-01", "period_end": "2025-02-30"},
    ),
    BadInput(
        "hook-oversize",
        "hook-v2",
        "hook: v2 range of 40 days (the API allows 31)",
        "to_date",
        "split the range",
        "run",
        {"from_date": "2025-05-01", "to_date": "2025-06-10"},
    ),
    BadInput(
        "hook-half",
        "hook-v2",
        "hook: v2 `from_date` without `to_date`",
        "to_date",
        "pass both from_date and to_date",
        "run",
        {"from_date": "2025-06-01", "to_date": None},
    ),
    BadInput(
        "hook-timestamp",
        "hook-v2",
        "hook: `from_date='2025-06-01T00:00:00Z'` (the API takes dates only)",
        "from_date",
        "YYYY-MM-DD",
        "run",
        {"from_date": "2025-06-01T00:00:00Z", "to_date": "2025-06-02"},
    ),
    # ---- output
    BadInput(
        "format-unknown",
        "v2",
        "`file_format='xlsx'`",
        "file_format",
        "one of jsonl, csv, parquet",
        "parse",
        {"file_format": "xlsx"},
    ),
    BadInput(
        "format-json",
        "paygo",
        "`file_format='json'` (JSON Lines is `jsonl`)",
        "file_format",
        "one of jsonl, csv, parquet",
        "parse",
        {"file_format": "json"},
    ),
    BadInput(
        "format-contradicts-suffix",
        "v2",
        "`usage.csv` with `file_format='parquet'`",
        "destination",
        "Change the suffix to match",
        "run",
        {"destination": "{dest}/usage.csv", "file_format": "parquet"},
    ),
    BadInput(
        "key-style",
        "v2",
        "`key_style='camelCase'`",
        "key_style",
        "snake",
        "parse",
        {"key_style": "camelCase"},
    ),
    BadInput(
        "destination-relative",
        "v2",
        "relative path `data/usage.jsonl`",
        "destination",
        "absolute path",
        "run",
        {"destination": "data/usage.jsonl"},
    ),
    BadInput(
        "destination-bucket-only",
        "paygo",
        "bucket without a key: `s3://billing-lake`",
        "destination",
        "add the object key",
        "run",
        {"destination": "s3://billing-lake"},
    ),
    BadInput(
        "destination-directory",
        "v2",
        "a directory: `s3://billing-lake/cloudflare/`",
        "destination",
        "add a file name",
        "run",
        {"destination": "s3://billing-lake/cloudflare/"},
    ),
    BadInput(
        "destination-one-slash",
        "profile",
        "`s3:/billing-lake/usage.jsonl` (one slash)",
        "destination",
        "two slashes",
        "run",
        {"destination": "s3:/billing-lake/usage.jsonl"},
    ),
    BadInput(
        "destination-http",
        "v2",
        "read-only scheme `https://example.com/usage.jsonl`",
        "destination",
        "write to object storage",
        "run",
        {"destination": "https://example.com/usage.jsonl"},
    ),
    BadInput(
        "destination-parquet-gz",
        "v2",
        "`usage.parquet.gz` (Parquet compresses itself)",
        "destination",
        "drop '.gz'",
        "run",
        {"destination": "{dest}/usage.parquet.gz"},
    ),
    BadInput(
        "destination-no-filesystem",
        "v2",
        "`gs://` without the Google provider installed",
        "destination",
        "install apache-airflow-providers-google",
        "run",
        {"destination": "gs://billing-lake/usage.jsonl"},
    ),
    BadInput(
        "destination-no-filesystem-paygo",
        "paygo",
        "`gs://` without the Google provider installed (PayGo)",
        "destination",
        "install apache-airflow-providers-google",
        "run",
        {"destination": "gs://billing-lake/usage.jsonl"},
    ),
    BadInput(
        "max-xcom-negative",
        "v2",
        "`max_xcom_records=-1`",
        "max_xcom_records",
        "max_xcom_records=1000",
        "parse",
        {"max_xcom_records": -1},
    ),
    BadInput(
        "max-xcom-string",
        "paygo",
        "`max_xcom_records='1000'` (a string)",
        "max_xcom_records",
        "max_xcom_records=1000",
        "parse",
        {"max_xcom_records": "1000"},
    ),
    # ---- endpoints and filters
    BadInput(
        "paygo-path",
        "paygo",
        "unknown PayGo path `paygo_path='v3/usage'`",
        "paygo_path",
        "billable-usage, paygo-usage, billing/usage/paygo",
        "parse",
        {"paygo_path": "v3/usage"},
    ),
    BadInput(
        "hook-paygo-path",
        "hook-paygo",
        "hook: `get_paygo_usage(path='v3/usage')`",
        "paygo_path",
        "billable-usage, paygo-usage, billing/usage/paygo",
        "run",
        {"path": "v3/usage"},
    ),
    BadInput(
        "metric-space",
        "v2",
        "`metric='workers requests'` (not a metric id)",
        "metric",
        "workers_standard_requests",
        "run",
        {"metric": "workers requests"},
    ),
    BadInput(
        "redact-string",
        "profile",
        "`redact='yes'`",
        "redact",
        "redact=True or redact=False",
        "parse",
        {"redact": "yes"},
    ),
    # ---- the sensor
    BadInput(
        "sensor-min-records-zero",
        "sensor",
        "`min_records=0` (would always be available)",
        "min_records",
        "min_records=1",
        "parse",
        {"min_records": 0},
    ),
    BadInput(
        "sensor-source",
        "sensor",
        "`source='focus'`",
        "source",
        "source='v2'",
        "parse",
        {"source": "focus"},
    ),
    BadInput(
        "sensor-metric-on-paygo",
        "sensor",
        "`metric` with `source='paygo'`",
        "metric",
        "source='v2'",
        "parse",
        {"source": "paygo", "metric": "workers_standard_requests"},
    ),
    BadInput(
        "sensor-paygo-path-on-v2",
        "sensor",
        "`paygo_path` with `source='v2'`",
        "paygo_path",
        "set source='paygo'",
        "parse",
        {"paygo_path": "paygo-usage"},
    ),
    BadInput(
        "sensor-day-word",
        "sensor",
        "`day='yesterday'`",
        "day",
        "YYYY-MM-DD",
        "run",
        {"day": "yesterday"},
    ),
    BadInput(
        "sensor-day-timestamp",
        "sensor",
        "`day='2025-06-10T06:00:00Z'`",
        "day",
        "pass dates",
        "run",
        {"day": "2025-06-10T06:00:00Z"},
    ),
    BadInput(
        "sensor-poll-interval",
        "sensor",
        "`poll_interval=0`",
        "poll_interval",
        "greater than zero",
        "parse",
        {"poll_interval": 0},
    ),
    BadInput(
        "sensor-request-timeout",
        "sensor",
        "`request_timeout=-5`",
        "request_timeout",
        "greater than zero",
        "parse",
        {"request_timeout": -5},
    ),
    BadInput(
        "sensor-max-retries",
        "sensor",
        "`max_retries=1.5`",
        "max_retries",
        "whole number",
        "parse",
        {"max_retries": 1.5},
    ),
    # ---- the connection
    BadInput(
        "conn-no-token",
        "v2",
        "connection without a password (no token)",
        "connection cloudflare_default password",
        "API token with Billing Read",
        "run",
        connection={"password": DROP},
    ),
    BadInput(
        "conn-bearer-prefix",
        "v2",
        "token pasted as `Bearer <token>`",
        "connection cloudflare_default password",
        "without 'Bearer '",
        "run",
        connection={"password": "Bearer emulator_user_token_billing_read_0000001"},
    ),
    BadInput(
        "conn-login-not-email",
        "paygo",
        "global key with `login='admin'` (not an email)",
        "connection cloudflare_default login",
        "set login to the account email",
        "run",
        connection={"login": "admin", "password": "deadbeefdeadbeefdeadbeefdeadbeef00001"},
    ),
    BadInput(
        "conn-account",
        "profile",
        "`extra.account_id='my-account'`",
        "connection cloudflare_default extra.account_id",
        "32 hexadecimal characters",
        "run",
        connection={"extra": {"account_id": "my-account"}},
    ),
    BadInput(
        "conn-timeout-word",
        "v2",
        "`extra.timeout='fast'`",
        "connection cloudflare_default extra.timeout",
        "number such as 60",
        "run",
        connection={"extra": {"timeout": "fast"}},
    ),
    BadInput(
        "conn-timeout-zero",
        "sensor",
        "`extra.timeout=0` (next to the sensor's own `timeout`)",
        "connection cloudflare_default extra.timeout",
        "greater than zero",
        "run",
        connection={"extra": {"timeout": "0"}},
    ),
    BadInput(
        "conn-max-retries",
        "v2",
        "`extra.max_retries=-1`",
        "connection cloudflare_default extra.max_retries",
        "zero or more",
        "run",
        connection={"extra": {"max_retries": -1}},
    ),
    BadInput(
        "conn-verify",
        "paygo",
        "`extra.verify='maybe'`",
        "connection cloudflare_default extra.verify",
        "true or false",
        "run",
        connection={"extra": {"verify": "maybe"}},
    ),
    BadInput(
        "conn-paygo-path",
        "paygo",
        "`extra.paygo_path='v3/usage'`",
        "connection cloudflare_default extra.paygo_path",
        "billable-usage, paygo-usage, billing/usage/paygo",
        "run",
        connection={"extra": {"paygo_path": "v3/usage"}},
    ),
    BadInput(
        "conn-metric-param",
        "v2",
        "`extra.v2_metric_param='metrics'`",
        "connection cloudflare_default extra.v2_metric_param",
        "both, metric, metric_id",
        "run",
        connection={"extra": {"v2_metric_param": "metrics"}},
    ),
    BadInput(
        "conn-host-scheme",
        "v2",
        "`host='ftp://api.cloudflare.com/client/v4'`",
        "connection cloudflare_default host",
        "https://api.cloudflare.com/client/v4",
        "run",
        connection={"host": "ftp://api.cloudflare.com/client/v4"},
    ),
    BadInput(
        "conn-host-credentials",
        "profile",
        "`host` with credentials in the URL",
        "connection cloudflare_default host",
        "login/password only",
        "run",
        connection={"host": "https://admin:hunter22@api.cloudflare.com/client/v4"},
    ),
    BadInput(
        "conn-extra-list",
        "v2",
        "`extra` is a JSON list",
        "connection cloudflare_default extra",
        "account_id",
        "run",
        {"account_id": "023e105f4ecef8ad9ca31a8372d0c353"},
        connection={"extra": ["account_id", "023e105f4ecef8ad9ca31a8372d0c353"]},
    ),
    BadInput(
        "conn-extra-malformed",
        "v2",
        "`extra` is not valid JSON (`{account_id: ...}`)",
        "connection cloudflare_default extra",
        "account_id",
        "run",
        {"account_id": "023e105f4ecef8ad9ca31a8372d0c353"},
        connection={"extra": "{account_id: 023e105f4ecef8ad9ca31a8372d0c353, timeout: 30}"},
    ),
)


def render_table() -> str:
    from reliability_support import markdown_table

    rows = [
        [str(index), case.target, case.mistake, case.caught, f"`{case.parameter}`", case.fix]
        for index, case in enumerate(CASES, start=1)
    ]
    return markdown_table(["#", "target", "bad input", "caught at", "error names", "the fix says (excerpt)"], rows)


if __name__ == "__main__":
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    print(render_table())
