"""Running test and example DAGs for real with ``dag.test()`` and reading what they produced.

Also the test side of Airflow 2/3 compatibility: where the tests read Airflow's metadata (DagBag,
XCom, asset events, reschedules, hook lineage) differs between majors. The tests never ask which
Airflow is installed; they call these helpers, which choose by the flags of
``airflow_provider_cfbilling.version_compat``.
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
import logging
import os
import threading
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from airflow_provider_cfbilling.version_compat import AIRFLOW_V_3_0_PLUS, AIRFLOW_V_3_1_PLUS, AIRFLOW_V_3_2_PLUS

REPO_ROOT = Path(__file__).resolve().parents[1]
TEST_DAGS = REPO_ROOT / "tests" / "dags"
EXAMPLE_DAGS = REPO_ROOT / "example_dags"


def advance_clock_after(
    emulator: Any, requests: int, seconds: float, route: str = "v2", limit: float = 60.0
) -> threading.Thread:
    """From a thread: once ``requests`` requests reached ``route``, move the emulator's clock on by
    ``seconds`` (a day gets published while a sensor or trigger waits). The thread gives up after
    ``limit`` seconds."""

    def watch() -> None:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if emulator.route_counts().get(route, 0) >= requests:
                emulator.advance_clock(seconds)
                return
            time.sleep(0.005)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def dag_bag(folder: Path) -> Any:
    """A DagBag of ``folder`` alone (never Airflow's example DAGs)."""
    if AIRFLOW_V_3_2_PLUS:  # moved out of airflow.models, without include_examples
        from airflow.dag_processing.dagbag import DagBag

        return DagBag(dag_folder=str(folder))
    from airflow.models.dagbag import DagBag  # type: ignore[no-redef]

    return DagBag(dag_folder=str(folder), include_examples=False)


def scheduler_dag(dag: Any) -> Any:
    """``dag`` as the scheduler sees it: serialized and back (the class differs by version)."""
    try:  # newer 3.x
        from airflow.serialization.serialized_objects import DagSerialization as Serializer
    except ImportError:  # 2.x, 3.0
        from airflow.serialization.serialized_objects import SerializedDAG as Serializer  # type: ignore[assignment]

    return Serializer.deserialize_dag(Serializer.serialize_dag(dag))


def load_dag(dag_id: str, folder: Path = TEST_DAGS) -> Any:
    """The DAG ``dag_id`` of ``folder``; its file must import cleanly (other files' errors are
    theirs: a DAG file written for one Airflow major must not stop the other tests)."""
    return _load(dag_id, folder)[1]


def _load(dag_id: str, folder: Path) -> tuple[Any, Any]:
    bag = dag_bag(folder)
    assert dag_id in bag.dags, bag.import_errors or f"no DAG {dag_id!r} in {folder}"
    dag = bag.dags[dag_id]
    assert dag.fileloc not in bag.import_errors, bag.import_errors[dag.fileloc]
    return bag, dag


def _bundle_name(folder: Path) -> str:
    """The name conftest gave the DAG bundle of ``folder``."""
    bundles = json.loads(os.environ["AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"])
    (name,) = [bundle["name"] for bundle in bundles if Path(bundle["kwargs"]["path"]) == folder]
    return name


def prepared_dag(dag_id: str, folder: Path = TEST_DAGS) -> Any:
    """The DAG, where a deployment's DAG processor would have put it before a run: 3.1+
    ``dag.test()`` syncs its bundle itself; on 3.0 and 2.x that is done here (asset and alias
    events, and 3.0's executor path, need the serialized DAG in the DB)."""
    bag, dag = _load(dag_id, folder)
    if AIRFLOW_V_3_0_PLUS and not AIRFLOW_V_3_1_PLUS:
        from airflow.dag_processing.bundles.manager import DagBundlesManager

        DagBundlesManager().sync_bundles_to_db()
        bag.sync_to_db(_bundle_name(folder), None)
    elif not AIRFLOW_V_3_0_PLUS:
        dag.sync_to_db()
    return dag


def _one_in_process_api() -> None:
    """Airflow 3.0 to 3.2: let ``dag.test()`` build its in-process execution API once per test process.

    Those releases build a new one (a FastAPI app: 1 to 3 s) for every task that ``dag.test()``
    runs, which made their test runs two to four times longer than 3.3's; 3.3 builds one per
    process (``lru_cache`` on ``in_process_api_server``). This does what 3.3 does, for the test
    process only.

    3.2 also needs what 3.3 fixed besides: it schedules the app's startup (which registers the
    services every route depends on) and hands out the transport at once, so a task's first request
    races the startup; and its services registry is shared by every app of the process, so shutting
    one down empties it for all (an API server in the same process then fails with "KeyError:
    JWTValidator"). Here the app gets a registry of its own and the first task waits for the
    startup. (Before, each app was also shut down when the object holding it was collected, as soon
    as the transport was handed out: the cache now holds it for the life of the process.)
    """
    from airflow import __version__ as airflow_version

    if not airflow_version.startswith(("3.0.", "3.1.", "3.2.")):
        return
    import functools

    from airflow.sdk.execution_time import supervisor

    if getattr(supervisor, "_cfbilling_one_api", False):
        return
    unpatched = supervisor.in_process_api_server

    @functools.lru_cache(maxsize=1)
    def in_process_api_server() -> Any:
        api = unpatched()
        if airflow_version.startswith("3.2."):
            import attrs
            import svcs
            from airflow.api_fastapi.execution_api import app as execution_app

            shared = execution_app.lifespan
            execution_app.lifespan = attrs.evolve(shared, registry=svcs.Registry())
            try:
                api.app  # noqa: B018 - built now, with a services registry of its own
            finally:
                execution_app.lifespan = shared
            api.transport  # noqa: B018 - schedules the startup
            deadline = time.monotonic() + 30
            while not hasattr(api.app.state, "svcs_registry") and time.monotonic() < deadline:
                time.sleep(0.01)
        return api

    supervisor.in_process_api_server = in_process_api_server
    supervisor._cfbilling_one_api = True  # type: ignore[attr-defined]


def run_dag(
    dag_id: str,
    *,
    logical_date: dt.datetime | None = None,
    conf: dict[str, Any] | None = None,
    example: bool = False,
) -> Any:
    """Run every task of the DAG through Airflow's task runner; returns the DagRun (the DAG
    prepared as :func:`prepared_dag` does)."""
    dag = prepared_dag(dag_id, EXAMPLE_DAGS if example else TEST_DAGS)
    kwargs: dict[str, Any] = {"run_conf": conf or {}}
    if AIRFLOW_V_3_0_PLUS:
        _one_in_process_api()
        if logical_date is not None:
            kwargs["logical_date"] = logical_date
    else:
        # Airflow 2's dag.test() also binds its stdout log handler once per process, to the
        # sys.stdout of that moment: drop it so this run's task log reaches the current stdout.
        task_logger = logging.getLogger("airflow.task")
        for handler in [h for h in task_logger.handlers if type(h) is logging.StreamHandler]:
            task_logger.removeHandler(handler)
        if logical_date is not None:
            kwargs["execution_date"] = logical_date
    # Task tracebacks rendered by rich (Airflow 3.0) wrap at 80 columns off a terminal.
    columns = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "200"
    try:
        return dag.test(**kwargs)
    finally:
        if columns is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = columns


def task_states(dag_run: Any) -> dict[str, str]:
    from airflow.utils.session import create_session

    with create_session() as session:
        return {
            ti.task_id + ("" if ti.map_index < 0 else f"[{ti.map_index}]"): str(ti.state)
            for ti in dag_run.get_task_instances(session=session)
        }


def xcom(dag_run: Any, task_id: str, key: str = "return_value", map_index: int = -1) -> Any:
    from airflow.utils.session import create_session

    if AIRFLOW_V_3_0_PLUS:
        from airflow.models.xcom import XComModel as model
    else:
        from airflow.models.xcom import XCom as model  # type: ignore[no-redef]

    with create_session() as session:
        row = (
            session.query(model)
            .filter_by(dag_id=dag_run.dag_id, run_id=dag_run.run_id, task_id=task_id, key=key, map_index=map_index)
            .one_or_none()
        )
        return None if row is None else row.value


def rendered_fields(dag_run: Any, task_id: str) -> dict[str, Any]:
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.utils.session import create_session

    with create_session() as session:
        row = (
            session.query(RenderedTaskInstanceFields)
            .filter_by(dag_id=dag_run.dag_id, run_id=dag_run.run_id, task_id=task_id)
            .one_or_none()
        )
        return {} if row is None else dict(row.rendered_fields)


def asset_events(dag_run: Any) -> dict[str, Any]:
    """``{uri: extra}`` of the asset (2.x: dataset) events the run's tasks emitted."""
    from airflow.utils.session import create_session

    if AIRFLOW_V_3_0_PLUS:
        from airflow.models.asset import AssetEvent as event
        from airflow.models.asset import AssetModel as asset

        asset_id = event.asset_id
    else:
        from airflow.models.dataset import DatasetEvent as event  # type: ignore[no-redef]
        from airflow.models.dataset import DatasetModel as asset

        asset_id = event.dataset_id
    with create_session() as session:
        rows = (
            session.query(asset.uri, event.extra)
            .join(asset, asset.id == asset_id)
            .filter(event.source_run_id == dag_run.run_id)
        )
        return {uri: extra for uri, extra in rows}


def asset_event_count() -> int:
    """How many asset (2.x: dataset) events the metadata DB holds, from every run."""
    from airflow.utils.session import create_session

    if AIRFLOW_V_3_0_PLUS:
        from airflow.models.asset import AssetEvent as event
    else:
        from airflow.models.dataset import DatasetEvent as event  # type: ignore[no-redef]
    with create_session() as session:
        return int(session.query(event).count())


def reschedule_count(dag_run: Any, task_id: str) -> int:
    """How many times the run's task ``task_id`` was rescheduled (a sensor in reschedule mode)."""
    from airflow.models.taskreschedule import TaskReschedule
    from airflow.utils.session import create_session

    with create_session() as session:
        (ti,) = [ti for ti in dag_run.get_task_instances(session=session) if ti.task_id == task_id]
        query = session.query(TaskReschedule)
        if AIRFLOW_V_3_0_PLUS:
            query = query.filter(TaskReschedule.ti_id == ti.id)
        else:
            query = query.filter_by(dag_id=ti.dag_id, task_id=ti.task_id, run_id=ti.run_id, map_index=ti.map_index)
        return query.count()


def hook_lineage_module() -> ModuleType:
    """The module whose ``get_hook_lineage_collector`` Airflow (and the provider) call."""
    return importlib.import_module("airflow.sdk.lineage" if AIRFLOW_V_3_2_PLUS else "airflow.lineage.hook")


def lineage_outputs(collector: Any) -> list[tuple[str, int]]:
    """``(uri, count)`` of each output asset (2.x: dataset) a hook-lineage collector holds."""
    if AIRFLOW_V_3_0_PLUS:
        return [(item.asset.uri, item.count) for item in collector.collected_assets.outputs]
    return [(item.dataset.uri, item.count) for item in collector.collected_datasets.outputs]


def lineage_inputs(collector: Any) -> list[tuple[str, int]]:
    """``(uri, count)`` of each input asset (2.x: dataset) a hook-lineage collector holds."""
    if AIRFLOW_V_3_0_PLUS:
        return [(item.asset.uri, item.count) for item in collector.collected_assets.inputs]
    return [(item.dataset.uri, item.count) for item in collector.collected_datasets.inputs]


def attach_filesystem(scheme: str, fs: Any) -> Any:
    """Register an fsspec filesystem for ``scheme`` with Airflow's object storage."""
    module = importlib.import_module("airflow.sdk.io.store" if AIRFLOW_V_3_0_PLUS else "airflow.io.store")
    return module.attach(scheme, fs=fs)
