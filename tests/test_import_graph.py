"""The package's modules import each other one way only (issue 17): no cycle, counting imports
inside functions and under ``if TYPE_CHECKING:`` (an import that dodges a circle at import time is
still a circle a reader has to untangle). The emulator has its own, stricter checks in tests/emulator."""

from __future__ import annotations

from pathlib import Path

from import_graph import cycles, import_graph

import airflow_provider_cfbilling

PACKAGE = "airflow_provider_cfbilling"


def test_the_package_import_graph_has_no_cycle() -> None:
    graph = import_graph(PACKAGE, Path(airflow_provider_cfbilling.__file__).parent)
    # The walk found the modules and their imports, function-level ones included.
    assert f"{PACKAGE}.hooks.cloudflare" in graph[f"{PACKAGE}.sensors.billing"]
    assert f"{PACKAGE}.emulator.server" in graph[f"{PACKAGE}.emulator.core"]
    assert cycles(graph) == []


def test_records_and_endpoints_import_nothing_of_the_package() -> None:
    """They describe the API's data and routes; everything else may use them, they use nothing
    (records only its own column tables)."""
    graph = import_graph(PACKAGE, Path(airflow_provider_cfbilling.__file__).parent)
    assert graph[f"{PACKAGE}.endpoints"] == set()
    assert graph[f"{PACKAGE}.record_columns"] == set()
    assert graph[f"{PACKAGE}.records"] == {f"{PACKAGE}.record_columns"}
