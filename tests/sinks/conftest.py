"""Fixtures for the sink tests: realistic records, a real S3 server (moto) and lineage collection."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

# The throwaway AIRFLOW_HOME comes from tests/conftest.py, which pytest loads for every test below it.


def v2_record(index: int) -> dict[str, Any]:
    """A documented v2 (FOCUS) record, as the API sends it, varied by ``index``."""
    day = 1 + index % 28
    return {
        "BillingAccountId": "023e105f4ecef8ad9ca31a8372d0c353",
        "BillingAccountName": "My Account — ünïcødé",
        "ChargeCategory": "Usage",
        "ChargeDescription": f'Workers Standard Requests, "daily" usage\n#{index}',
        "ChargeFrequency": "Usage-Based",
        "ChargePeriodEnd": f"2025-05-{day + 1:02d}T00:00:00Z",
        "ChargePeriodStart": f"2025-05-{day:02d}T00:00:00Z",
        "ConsumedQuantity": 150000 + index,
        "ConsumedUnit": "Requests",
        "HostProviderName": "Cloudflare",
        "InvoiceIssuerName": "Cloudflare",
        "ServiceProviderName": "Cloudflare",
        "x_BillableMetricName": "Workers Standard Requests",
        "BilledCost": None,
        "BillingCurrency": "USD",
        "ContractedCost": 0.75 + index / 3,
        "ContractedUnitPrice": 0.000005,
        "PricingQuantity": 150000.5,
        "x_BillableMetricId": "workers_standard_requests",
        "Tags": {"team": "fintech", "key-only": True},
        "x_ZoneId": None,
    }


def v2_records(count: int, *, unknown_from: int | None = None) -> Iterator[dict[str, Any]]:
    """``count`` records; from ``unknown_from`` on, some carry fields no document lists yet."""
    for index in range(count):
        record = v2_record(index)
        if unknown_from is not None and index >= unknown_from:
            if index % 2:
                record["x_FutureCount"] = index
                record["x_FutureFlag"] = index % 4 == 1
            else:
                record["x_FutureRatio"] = index / 7
                record["x_FutureNested"] = {"a": [1, 2], "b": None}
            record["x_AlwaysNull"] = None
        yield record


class Boom(RuntimeError):
    """What the API failing mid-stream looks like to the sink."""


def failing_after(records: Iterator[dict[str, Any]], count: int) -> Iterator[dict[str, Any]]:
    """Yield ``count`` records, then raise :class:`Boom`, as a paginated fetch that fails would."""
    for index, record in enumerate(records):
        if index == count:
            raise Boom(f"the API failed after {count} records")
        yield record
    raise Boom(f"the API failed after {count} records")


@pytest.fixture
def lineage_collector(monkeypatch):
    """A real hook-lineage collector in place of the no-op one Airflow uses without a reader."""
    from harness import hook_lineage_module

    lineage = hook_lineage_module()
    collector = lineage.HookLineageCollector()
    monkeypatch.setattr(lineage, "get_hook_lineage_collector", lambda: collector)
    return collector


@pytest.fixture
def s3(s3_server) -> Any:
    """A boto3 client of the test server (``s3_server`` lives in the root conftest): the ground
    truth the tests check s3fs writes against."""
    return s3_server["client"]


@pytest.fixture
def s3_prefix(s3_server) -> str:
    """A fresh key prefix per test, so tests never see each other's objects."""
    return f"run-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def make_records():
    """``make_records(count, unknown_from=None)``: realistic v2 records (see :func:`v2_records`)."""
    return v2_records


@pytest.fixture
def fail_after():
    """``fail_after(records, count)``: the records, then :class:`Boom` after ``count`` of them."""
    return failing_after


@pytest.fixture
def boom():
    """The exception class :func:`failing_after` raises."""
    return Boom
