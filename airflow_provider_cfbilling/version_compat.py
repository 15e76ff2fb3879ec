"""Every Airflow-version branch of the provider, in one place.

Other modules import Airflow base classes and helpers from here and never ask which
Airflow is installed. Supported: Airflow 2.10 through 3.x.
"""

from __future__ import annotations

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
    from airflow.sdk.exceptions import AirflowException, AirflowSensorTimeout, AirflowSkipException
else:
    from airflow.datasets import Dataset as OutletAsset  # type: ignore[no-redef]
    from airflow.datasets import DatasetAlias as OutletAssetAlias  # type: ignore[no-redef]
    from airflow.exceptions import (  # type: ignore[assignment,no-redef]
        AirflowException,
        AirflowSensorTimeout,
        AirflowSkipException,
    )
    from airflow.io.path import ObjectStoragePath  # type: ignore[no-redef]
    from airflow.models import BaseOperator  # type: ignore[no-redef]
    from airflow.sensors.base import BaseSensorOperator  # type: ignore[no-redef]


def get_hook_lineage_collector() -> Any:
    """The collector that records hook-level lineage (input/output assets)."""
    if AIRFLOW_V_3_0_PLUS:
        from airflow.sdk.lineage import get_hook_lineage_collector as _collector
    else:
        from airflow.lineage.hook import get_hook_lineage_collector as _collector  # type: ignore[no-redef]
    return _collector()


def mask_secret(value: str) -> None:
    """Register ``value`` with Airflow's log masker."""
    if AIRFLOW_V_3_0_PLUS:
        from airflow.sdk.log import mask_secret as _mask
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
    "default_deferrable",
    "get_hook_lineage_collector",
    "mask_secret",
]
