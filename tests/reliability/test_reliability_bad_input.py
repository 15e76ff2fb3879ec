"""Bad input fails at once, clearly, and harmlessly: every row of ``reliability_bad_inputs.CASES``.

For each row the error must be a ``ValueError`` (``CloudflareInputError`` is one) that names the
parameter and says how to fix it; it must come at DAG-parse time or when the task starts, before
the emulator sees a single request of any kind, and nothing may appear under the destination
directory (not even an empty partition folder). The docs table is rendered from the same rows.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from reliability_bad_inputs import CASES, DROP, BadInput, render_table
from reliability_support import SECRETS, connection, docs_block

from airflow_provider_cfbilling.exceptions import CloudflareInputError

DOCS = Path(__file__).resolve().parents[2] / "docs" / "reliability.md"
WINDOW = {"period_start": "2025-06-10", "period_end": "2025-06-11"}


def patched_connection(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    conn = json.loads(json.dumps(base))
    for key, value in changes.items():
        if key == "extra" and isinstance(value, dict):
            for name, item in value.items():
                if item is DROP:
                    conn["extra"].pop(name, None)
                else:
                    conn["extra"][name] = item
        elif value is DROP:
            conn.pop(key, None)
        else:
            conn[key] = value
    return conn


def build(case: BadInput, destination: str) -> Any:
    """The operator or sensor of the case (its constructor may raise: that is "parse")."""
    from airflow_provider_cfbilling.operators.billing import (
        CloudflareBillingProfileOperator,
        CloudflarePaygoUsageOperator,
        CloudflareUsageV2Operator,
    )
    from airflow_provider_cfbilling.sensors.billing import CloudflareUsageAvailableSensor

    kwargs = {key: value for key, value in case.kwargs.items()}
    if case.target == "sensor":
        arguments = {"day": "2025-06-10", "poke_interval": 0.1, "timeout": 1, "deferrable": False, **kwargs}
        return CloudflareUsageAvailableSensor(task_id="bad", **arguments)
    if isinstance(kwargs.get("destination"), str):
        kwargs["destination"] = kwargs["destination"].replace("{dest}", destination.rsplit("/", 1)[0])
    arguments = {"destination": destination, **kwargs}
    if case.target == "profile":
        return CloudflareBillingProfileOperator(task_id="bad", **arguments)
    arguments = {**WINDOW, **arguments}
    operator_class = CloudflareUsageV2Operator if case.target == "v2" else CloudflarePaygoUsageOperator
    return operator_class(task_id="bad", **arguments)


def run_hook(case: BadInput) -> None:
    from airflow_provider_cfbilling.hooks.cloudflare import CloudflareHook

    with CloudflareHook() as hook:
        if case.target == "hook-v2":
            list(hook.get_v2_usage(**case.kwargs))
        else:
            list(hook.get_paygo_usage(from_date="2025-06-01", to_date="2025-06-02", **case.kwargs))


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_fails_before_any_request_naming_the_parameter_and_the_fix(case, emulator, monkeypatch, tmp_path):
    base = connection(emulator)
    monkeypatch.setenv("AIRFLOW_CONN_CLOUDFLARE_DEFAULT", json.dumps(patched_connection(base, case.connection)))
    landing = tmp_path / "lake"
    landing.mkdir()
    destination = f"file://{landing}/charge_date=2025-06-10/usage.jsonl"

    caught = "parse"
    with pytest.raises(ValueError) as raised:
        if case.target.startswith("hook-"):
            caught = "run"
            run_hook(case)
        else:
            task = build(case, destination)
            caught = "run"
            task.execute({})
    error = raised.value
    text = str(error)

    named = error.parameter if isinstance(error, CloudflareInputError) else text
    assert case.parameter in named, f"the error does not name {case.parameter!r}: {text}"
    assert case.fix.lower() in text.lower(), f"the error does not say {case.fix!r}: {text}"
    if isinstance(error, CloudflareInputError):
        assert error.fix and error.problem
    assert caught == case.caught, f"caught at {caught}, expected at {case.caught}"
    assert not any(secret in text for secret in (*SECRETS, "hunter22")), "the error carries a credential"
    requests = [f"{entry['method']} {entry['path']}" for entry in emulator.request_log]
    assert requests == [], f"requests were sent before the bad input was refused: {requests}"
    assert sorted(path.name for path in landing.rglob("*")) == [], "something was written under the destination"


def test_there_are_at_least_25_bad_inputs():
    assert len(CASES) >= 25
    assert len({case.id for case in CASES}) == len(CASES)


def test_the_docs_show_this_table():
    assert docs_block("bad-input-table", DOCS) == render_table()
