"""Fixtures of the example-DAG tests: a lake root per test and the ``cloudflare_api`` pool."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def lake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The Variable ``cloudflare_lake_root`` (an environment variable) pointing at a fresh directory."""
    root = tmp_path / "lake"
    root.mkdir()
    monkeypatch.setenv("AIRFLOW_VAR_CLOUDFLARE_LAKE_ROOT", f"file://{root}")
    return root


@pytest.fixture
def cloudflare_pool(airflow_db: Path) -> str:
    """The pool the many-accounts DAG runs in, created as a deployment would (``airflow pools set``)."""
    from airflow.models.pool import Pool

    Pool.create_or_update_pool(
        "cloudflare_api", 4, "Cloudflare API: 1,200 requests / 5 min per token", include_deferred=False
    )
    return "cloudflare_api"
