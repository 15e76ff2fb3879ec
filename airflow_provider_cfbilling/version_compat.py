"""Every Airflow-version branch of the provider, in one place.

Other modules import Airflow base classes and helpers from here and never ask which
Airflow is installed. Supported: Airflow 2.10 through 3.x.
"""

from __future__ import annotations

import asyncio
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent


def get_base_airflow_version_tuple() -> tuple[int, int, int]:
    from airflow import __version__
    from packaging.version import Version

    version = Version(__version__)
    return version.major, version.minor, version.micro


AIRFLOW_V_3_0_PLUS = get_base_airflow_version_tuple() >= (3, 0, 0)
AIRFLOW_V_3_1_PLUS = get_base_airflow_version_tuple() >= (3, 1, 0)
AIRFLOW_V_3_2_PLUS = get_base_airflow_version_tuple() >= (3, 2, 0)

if AIRFLOW_V_3_1_PLUS:
    from airflow.sdk import BaseHook
else:
    from airflow.hooks.base import BaseHook  # type: ignore[no-redef,attr-defined]

if AIRFLOW_V_3_0_PLUS:
    from airflow.sdk import Asset as OutletAsset
    from airflow.sdk import AssetAlias as OutletAssetAlias
    from airflow.sdk import BaseOperator, BaseSensorOperator, ObjectStoragePath
else:
    from airflow.datasets import Dataset as OutletAsset  # type: ignore[no-redef]
    from airflow.datasets import DatasetAlias as OutletAssetAlias  # type: ignore[no-redef]
    from airflow.io.path import ObjectStoragePath  # type: ignore[no-redef]
    from airflow.models import BaseOperator  # type: ignore[no-redef]
    from airflow.sensors.base import BaseSensorOperator  # type: ignore[no-redef]

# The task SDK defines its own exceptions from 3.2 on; before that they live in airflow.exceptions
# (where 3.2+ still re-exports them, with a deprecation warning).
# The task runner of each version catches the AirflowFailException of that same module (3.0/3.1:
# airflow.exceptions; 3.2+: airflow.sdk.exceptions, which airflow.exceptions re-exports as the same
# class): a task raising it fails without its retries.
if AIRFLOW_V_3_2_PLUS:
    from airflow.sdk.exceptions import (
        AirflowException,
        AirflowFailException,
        AirflowSensorTimeout,
        AirflowSkipException,
    )
else:
    from airflow.exceptions import (  # type: ignore[assignment,no-redef]
        AirflowException,
        AirflowFailException,
        AirflowSensorTimeout,
        AirflowSkipException,
    )


def get_hook_lineage_collector() -> Any:
    """The collector that records hook-level lineage (input/output assets)."""
    if AIRFLOW_V_3_2_PLUS:
        from airflow.sdk.lineage import get_hook_lineage_collector as _collector
    else:  # 2.x (datasets) and 3.0/3.1 (assets) keep it in core
        from airflow.lineage.hook import get_hook_lineage_collector as _collector  # type: ignore[no-redef]
    return _collector()


def report_output_asset(context: Any, uri: str) -> None:
    """Report ``uri`` as an output of ``context`` (hook-level lineage): an asset on 3.x, a dataset on 2.x."""
    collector = get_hook_lineage_collector()
    if AIRFLOW_V_3_0_PLUS:
        collector.add_output_asset(context=context, uri=uri)
    else:
        collector.add_output_dataset(context=context, uri=uri)


async def aget_connection(conn_id: str) -> Any:
    """The connection ``conn_id``, without blocking the event loop (for triggers).

    Airflow 3.3+ resolves it natively (``BaseHook.aget_connection``); before that the sync lookup
    runs in a worker thread.
    """
    if hasattr(BaseHook, "aget_connection"):
        return await BaseHook.aget_connection(conn_id)
    return await asyncio.to_thread(BaseHook.get_connection, conn_id)


def mask_secret(value: str) -> None:
    """Register ``value`` with Airflow's log masker."""
    if AIRFLOW_V_3_1_PLUS:
        from airflow.sdk.log import mask_secret as _mask
    elif AIRFLOW_V_3_0_PLUS:
        from airflow.sdk.execution_time.secrets_masker import _secrets_masker
        from airflow.sdk.execution_time.secrets_masker import mask_secret as _mask  # type: ignore[no-redef]

        # 3.0 tells the supervisor before masking locally, and dag.test()'s in-process supervisor
        # logs that message at DEBUG: mask here first, so the message is logged masked (3.1+ does).
        _secrets_masker().add_mask(value)
    else:
        from airflow.utils.log.secrets_masker import mask_secret as _mask  # type: ignore[no-redef]
    _mask(value)


def default_deferrable() -> bool:
    """``[operators] default_deferrable`` from the Airflow configuration."""
    from airflow.configuration import conf

    return conf.getboolean("operators", "default_deferrable", fallback=False)


__all__ = [
    "AIRFLOW_V_3_0_PLUS",
    "AIRFLOW_V_3_1_PLUS",
    "AIRFLOW_V_3_2_PLUS",
    "AirflowException",
    "AirflowFailException",
    "AirflowSensorTimeout",
    "AirflowSkipException",
    "BaseHook",
    "BaseOperator",
    "BaseSensorOperator",
    "BaseTrigger",
    "ObjectStoragePath",
    "OutletAsset",
    "OutletAssetAlias",
    "TriggerEvent",
    "aget_connection",
    "default_deferrable",
    "get_hook_lineage_collector",
    "mask_secret",
    "report_output_asset",
]
