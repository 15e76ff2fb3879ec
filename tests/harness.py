"""Running test and example DAGs for real with ``dag.test()`` and reading what they produced."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
TEST_DAGS = REPO_ROOT / "tests" / "dags"
EXAMPLE_DAGS = REPO_ROOT / "example_dags"


def load_dag(dag_id: str, folder: Path = TEST_DAGS) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(folder))
    assert not bag.import_errors, bag.import_errors
    return bag.dags[dag_id]


def run_dag(
    dag_id: str,
    *,
    logical_date: dt.datetime | None = None,
    conf: dict[str, Any] | None = None,
    example: bool = False,
) -> Any:
    """Run every task of the DAG through Airflow's task runner; returns the DagRun."""
    dag = load_dag(dag_id, EXAMPLE_DAGS if example else TEST_DAGS)
    kwargs: dict[str, Any] = {"run_conf": conf or {}}
    if logical_date is not None:
        kwargs["logical_date"] = logical_date
    return dag.test(**kwargs)


def task_states(dag_run: Any) -> dict[str, str]:
    from airflow.utils.session import create_session

    with create_session() as session:
        return {
            ti.task_id + ("" if ti.map_index < 0 else f"[{ti.map_index}]"): str(ti.state)
            for ti in dag_run.get_task_instances(session=session)
        }


def xcom(dag_run: Any, task_id: str, key: str = "return_value", map_index: int = -1) -> Any:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = (
            session.query(XComModel)
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
