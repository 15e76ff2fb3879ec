"""Secrets stay secret: the token, the global key and the email never show up anywhere a person or
a downstream system can read, and the billing profile's personal and payment fields are redacted.

``reliability_secrets`` runs for real (``dag.test()``, Airflow's task runner) once per auth scheme,
with succeeding tasks and failing ones whose exceptions are logged. Scanned: everything written to
stdout/stderr (file descriptors, so the task runner's own output is included) and to Python
logging, every task log file under ``AIRFLOW_HOME/logs`` (if the runner wrote any), every XCom,
every rendered template field, the files the tasks wrote and the emulator's request log. The same
failures are then raised in-process to scan the exceptions themselves (message, repr, traceback).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import traceback
from pathlib import Path
from typing import Any

import pytest
from reliability_support import SECRETS, connection, leaks, without_airflow_30_mask_message

from airflow_provider_cfbilling.emulator import DEFAULT_ACCOUNT_ID
from airflow_provider_cfbilling.exceptions import CloudflareAPIError
from airflow_provider_cfbilling.records import PROFILE_KEPT_FIELDS, REDACTED

pytestmark = pytest.mark.e2e

LOGICAL = dt.datetime(2025, 6, 19, tzinfo=dt.timezone.utc)
TASKS = (
    "usage_to_xcom",
    "profile_to_xcom",
    "profile_to_file",
    "usage_available",
    "paygo_forbidden",
    "paygo_network_down",
)


def arm_failures(emulator: Any) -> None:
    emulator.add_fault(route="paygo", kind="status", status=403, code=10000, message="Authentication error")
    emulator.add_fault(route="paygo-usage", kind="drop")


def raw_profile_values(emulator: Any) -> list[str]:
    """The personal and payment values the emulator's profile holds (what must never be stored)."""
    import httpx

    from airflow_provider_cfbilling.emulator import DEFAULT_TOKEN

    response = httpx.get(
        f"{emulator.base_url}/accounts/{DEFAULT_ACCOUNT_ID}/billing/profile",
        headers={"Authorization": f"Bearer {DEFAULT_TOKEN}"},
    )
    profile = response.json()["result"]
    emulator.clear_request_log()
    return sorted(
        {str(value) for name, value in profile.items() if name not in PROFILE_KEPT_FIELDS and isinstance(value, str)}
        - {"", "US", "CA"},  # too short to be meaningful as a substring
        key=len,
        reverse=True,
    )


def log_files(home: Path) -> dict[str, str]:
    folder = home / "logs"
    if not folder.exists():
        return {}
    return {
        f"log file {path.relative_to(folder)}": path.read_text(encoding="utf-8", errors="replace")
        for path in folder.rglob("*")
        if path.is_file()
    }


@pytest.mark.parametrize("scheme", ["token", "global_key"])
def test_no_secret_reaches_logs_xcom_rendered_fields_files_or_the_request_log(
    scheme, airflow_db, emulator, monkeypatch, tmp_path, capfd, caplog
):
    from harness import rendered_fields, run_dag, task_states, xcom

    monkeypatch.setenv(
        "AIRFLOW_CONN_CLOUDFLARE_DEFAULT", json.dumps(connection(emulator, scheme=scheme, max_retries=1))
    )
    personal = raw_profile_values(emulator)
    arm_failures(emulator)
    base = tmp_path / "lake"
    caplog.set_level(logging.DEBUG)

    dag_run = run_dag("reliability_secrets", logical_date=LOGICAL, conf={"base": f"file://{base}"})

    states = task_states(dag_run)
    assert states == {
        "usage_to_xcom": "success",
        "profile_to_xcom": "success",
        "profile_to_file": "success",
        "usage_available": "success",
        "paygo_forbidden": "failed",
        "paygo_network_down": "failed",
    }, states
    captured = capfd.readouterr()
    texts = {"stdout": captured.out, "stderr": captured.err, "logging": caplog.text, **log_files(airflow_db)}
    texts = {where: without_airflow_30_mask_message(text) for where, text in texts.items()}
    everything = "\n".join(texts.values())
    # The scan covers the failures: their exceptions were logged, with Cloudflare's answer.
    assert "CloudflarePermissionError" in everything and "10000" in everything
    assert "Network error talking to Cloudflare" in everything

    for task_id in TASKS:
        texts[f"xcom {task_id}"] = json.dumps(xcom(dag_run, task_id), default=str)
        texts[f"rendered fields {task_id}"] = json.dumps(rendered_fields(dag_run, task_id), default=str)
    written = {f"file {path.relative_to(base)}": path.read_text() for path in base.rglob("*") if path.is_file()}
    # The profile and its manifest: both scanned for secrets.
    assert sorted(written) == [
        "file billing_profile/_profile.jsonl.manifest.json",
        "file billing_profile/profile.jsonl",
    ]
    texts.update(written)
    texts["emulator request log"] = json.dumps(emulator.request_log)
    assert {entry["auth_scheme"] for entry in emulator.request_log} == {"bearer" if scheme == "token" else "global_key"}

    assert leaks(texts) == []

    # Billing profile: personal and payment fields redacted in XCom and in the file, by default.
    stored = {
        "xcom": xcom(dag_run, "profile_to_xcom"),
        "file": json.loads(written["file billing_profile/profile.jsonl"]),
    }
    for where, profile in stored.items():
        present = [name for name, value in profile.items() if name not in PROFILE_KEPT_FIELDS and value is not None]
        assert present, where
        assert all(profile[name] == REDACTED for name in present), where
    stored_text = json.dumps(stored)
    assert [value for value in personal if value in stored_text] == []


@pytest.mark.parametrize("scheme", ["token", "global_key"])
def test_exceptions_carry_no_secret(scheme, emulator, monkeypatch):
    """The failures of the DAG run above, raised in-process: message, repr, args and traceback."""
    from airflow_provider_cfbilling.operators.billing import CloudflarePaygoUsageOperator

    monkeypatch.setenv(
        "AIRFLOW_CONN_CLOUDFLARE_DEFAULT", json.dumps(connection(emulator, scheme=scheme, max_retries=1))
    )
    arm_failures(emulator)
    emulator.add_fault(route="v2", kind="not_json")
    errors: list[BaseException] = []
    for path in ("billing/usage/paygo", "paygo-usage"):
        operator = CloudflarePaygoUsageOperator(
            task_id="t", paygo_path=path, period_start="2025-06-10", period_end="2025-06-11"
        )
        with pytest.raises(CloudflareAPIError) as raised:
            operator.execute({})
        errors.append(raised.value)
    from airflow_provider_cfbilling.hooks.cloudflare import CloudflareHook

    with pytest.raises(CloudflareAPIError) as raised, CloudflareHook() as hook:
        list(hook.get_v2_usage(DEFAULT_ACCOUNT_ID, "2025-06-10", "2025-06-11"))
    errors.append(raised.value)
    ok, message = CloudflareHook().test_connection()
    assert ok, message

    texts = {}
    for index, error in enumerate(errors):
        texts[f"error {index}"] = "\n".join(
            [str(error), repr(error), repr(error.args), *traceback.format_exception(error)]
        )
    texts["test_connection"] = message
    assert leaks(texts) == []
    assert all(secret not in repr(CloudflareHook().settings) for secret in SECRETS)


def test_the_scan_would_see_a_leak():
    """The scanner is not blind: secrets are found case-insensitively, wherever they sit."""
    token, key, email = SECRETS
    assert leaks({"a": f"Authorization: Bearer {token}", "b": key.upper(), "c": f"<{email}>"}) == [
        f"a: {token[:6]}... in 'Authorization: Bearer <SECRET>'",
        f"b: {key[:6]}... in '<SECRET>'",
        f"c: {email[:6]}... in '<<SECRET>>'",
    ]
    assert leaks({"clean": "Authorization: Bearer ***"}) == []
    assert os.environ.get("AIRFLOW_HOME")
