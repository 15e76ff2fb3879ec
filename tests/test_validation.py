"""The argument checks shared by the operators, the sensor, the trigger and the SQL landing:
each names the parameter, what was wrong and the fix, and accepts exactly what it documents."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_cfbilling import validation
from airflow_provider_cfbilling.exceptions import CloudflareInputError


@pytest.mark.parametrize("value", [-1, 1.0, "3", True, None])
def test_whole_number_refuses_what_is_not_a_count(value: Any) -> None:
    with pytest.raises(CloudflareInputError, match=r"lookback_days: .* is not a whole number of days >= 0\. Use 7"):
        validation.whole_number(value, "lookback_days", minimum=0, unit="days", fix="Use 7")


def test_whole_number_keeps_the_minimum() -> None:
    assert validation.whole_number(0, "n", minimum=0, fix="") == 0
    assert validation.whole_number(5, "n", minimum=1, fix="") == 5
    with pytest.raises(CloudflareInputError, match=r"n: 0 is not a whole number >= 1"):
        validation.whole_number(0, "n", minimum=1, fix="Use 1")


@pytest.mark.parametrize("value", ["False", "true", 0, 1, None])
def test_flag_takes_booleans_only(value: Any) -> None:
    with pytest.raises(CloudflareInputError, match=r"redact: .* is not a boolean\. Use redact=True or redact=False"):
        validation.flag(value, "redact")
    assert validation.flag(False, "redact") is False


def test_metric() -> None:
    assert validation.metric(None) is None
    assert validation.metric(" workers_standard_requests ") == "workers_standard_requests"
    for bad in ("", "two words", 3):
        with pytest.raises(CloudflareInputError, match="is not a billable metric id"):
            validation.metric(bad)


def test_paygo_path() -> None:
    assert validation.paygo_path("/billing/usage/paygo/") == "billing/usage/paygo"
    assert validation.paygo_path(None) is None
    assert validation.paygo_path("{{ var.value.path }}", template_ok=True) == "{{ var.value.path }}"
    with pytest.raises(CloudflareInputError, match="is not a PayGo path"):
        validation.paygo_path("{{ var.value.path }}")
    with pytest.raises(CloudflareInputError, match=r"'usage' is not a PayGo path\. Use one of billable-usage"):
        validation.paygo_path("usage")


@pytest.mark.parametrize(
    ("source", "metric", "path", "message"),
    [
        ("focus", None, None, r"source: 'focus' is not a usage source"),
        ("paygo", "workers_standard_requests", None, r"metric: the PayGo endpoints have no metric filter"),
        ("v2", None, "billable-usage", r"paygo_path: it chooses a PayGo path, but source is 'v2'"),
        ("paygo", None, "usage", r"paygo_path: 'usage' is not a PayGo path"),
    ],
)
def test_usage_arguments_refuse(source: str, metric: Any, path: Any, message: str) -> None:
    with pytest.raises(CloudflareInputError, match=message):
        validation.usage_arguments(source, metric, path)


@pytest.mark.parametrize(
    ("source", "metric", "path"),
    [("v2", "workers_standard_requests", None), ("v2", "", ""), ("paygo", None, "paygo-usage"), ("paygo", "", None)],
)
def test_usage_arguments_accept(source: str, metric: Any, path: Any) -> None:
    validation.usage_arguments(source, metric, path)


def test_key_style() -> None:
    assert validation.key_style("api") == "api"
    with pytest.raises(CloudflareInputError, match=r"key_style: 'camel' is not a key style"):
        validation.key_style("camel")
