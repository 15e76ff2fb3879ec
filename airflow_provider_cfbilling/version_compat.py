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


def _hook_lineage_module() -> Any:
    """The module whose ``get_hook_lineage_collector`` Airflow's own hooks call."""
    if AIRFLOW_V_3_2_PLUS:
        import airflow.sdk.lineage as lineage
    else:  # 2.x (datasets) and 3.0/3.1 (assets) keep it in core
        import airflow.lineage.hook as lineage  # type: ignore[no-redef]
    return lineage


def _has_hook_lineage_readers() -> bool:
    """Whether a plugin registers a hook-lineage reader (Airflow's rule for a recording collector)."""
    if AIRFLOW_V_3_2_PLUS:
        from airflow.sdk import plugins_manager

        return bool(plugins_manager.get_hook_lineage_readers_plugins())
    from airflow import plugins_manager  # type: ignore[no-redef]

    plugins_manager.initialize_hook_lineage_readers_plugins()  # type: ignore[attr-defined]
    return bool(plugins_manager.hook_lineage_reader_classes)  # type: ignore[attr-defined]


def _is_airflows_getter_unbuilt(lineage: Any, getter: Any) -> bool:
    """Whether ``getter`` is Airflow's own ``get_hook_lineage_collector`` and has not built its
    collector yet: not a replacement, nor a wrapper around it (``functools.wraps`` copies the name)."""
    if AIRFLOW_V_3_2_PLUS:  # the singleton lives in a functools.cache around the function
        cache_info = getattr(getter, "cache_info", None)
        if cache_info is None or cache_info().currsize != 0:
            return False
        function = getattr(getter, "__wrapped__", None)
    else:  # the singleton lives in a module global
        if getattr(lineage, "_hook_lineage_collector", None) is not None:
            return False
        function = getter
    return (
        getattr(function, "__module__", None) == lineage.__name__
        and getattr(function, "__qualname__", None) == "get_hook_lineage_collector"
        and not hasattr(function, "__wrapped__")
    )


def get_hook_lineage_collector() -> Any | None:
    """The collector that records hook-level lineage, or ``None`` when Airflow records none.

    Without a hook-lineage reader plugin (OpenLineage registers one once it is configured)
    Airflow hands out a ``NoOpCollector`` that drops every report, and on 3.x merely building it
    registers every installed provider's asset factories, which imports the Amazon provider's S3
    hook and ``boto3``: 0.26 s, more than landing 10k records takes. So while Airflow's own
    function is in place and has not built its collector yet, and no reader is registered, there
    is nothing to record and nothing is built. A collector that already exists, or a function that
    a plugin or a test put in place of Airflow's (or around it), is always used.
    """
    lineage = _hook_lineage_module()
    getter = lineage.get_hook_lineage_collector
    if _is_airflows_getter_unbuilt(lineage, getter) and not _has_hook_lineage_readers():
        return None
    return getter()


def report_output_asset(context: Any, uri: str) -> None:
    """Report ``uri`` as an output of ``context`` (hook-level lineage): an asset on 3.x, a dataset on 2.x."""
    collector = get_hook_lineage_collector()
    if collector is None:
        return
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
