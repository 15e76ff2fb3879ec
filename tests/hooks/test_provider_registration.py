"""The provider as Airflow discovers it through the installed entry point."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import entry_points

from airflow_provider_cfbilling.get_provider_info import get_provider_info


def test_entry_point_returns_provider_info_named_like_the_distribution():
    (entry_point,) = [
        ep for ep in entry_points(group="apache_airflow_provider") if ep.value.startswith("airflow_provider_cfbilling")
    ]
    info = entry_point.load()()
    assert info["package-name"] == "airflow-provider-cfbilling"
    for kind in ("hooks", "operators", "sensors", "triggers"):
        modules = [module for entry in info[kind] for module in entry["python-modules"]]
        assert modules, kind
    (connection_type,) = info["connection-types"]
    assert connection_type["connection-type"] == "cloudflare"
    assert connection_type["hook-class-name"] == "airflow_provider_cfbilling.hooks.cloudflare.CloudflareHook"
    assert set(connection_type["conn-fields"]) >= {"account_id", "timeout", "max_retries", "verify"}
    assert "schema" in connection_type["ui-field-behaviour"]["hidden-fields"]


def test_providers_manager_knows_the_provider_and_connection_type():
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    assert "airflow-provider-cfbilling" in manager.providers
    try:  # newer Airflow 3: hooks are the task SDK's business (ProvidersManager.hooks is deprecated there)
        from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

        hooks = ProvidersManagerTaskRuntime().hooks
    except ImportError:
        hooks = manager.hooks
    hook_info = hooks["cloudflare"]
    assert hook_info is not None
    assert hook_info.hook_class_name == "airflow_provider_cfbilling.hooks.cloudflare.CloudflareHook"
    assert hook_info.connection_testable
    widgets = [name for name in manager.connection_form_widgets if name.startswith("extra__cloudflare__")]
    assert "extra__cloudflare__account_id" in widgets
    assert "cloudflare" in manager.field_behaviours


def test_provider_info_validates_against_airflows_schema():
    import json
    from importlib.resources import files

    import jsonschema

    schema = json.loads(files("airflow").joinpath("provider_info.schema.json").read_text())
    jsonschema.validate(get_provider_info(), schema)


def test_airflow_providers_list_shows_the_provider():
    airflow = os.path.join(os.path.dirname(sys.executable), "airflow")
    result = subprocess.run(
        [airflow, "providers", "list", "-o", "plain"], capture_output=True, text=True, timeout=120, check=True
    )
    assert "airflow-provider-cfbilling" in result.stdout


def test_the_connection_form_methods_are_the_hook_classs_own():
    """Airflow 2.x-3.1 read them from the hook class's own ``__dict__`` and ignore inherited ones (the
    form then loses every extra field). The main environment's providers manager no longer does, so
    this is checked here directly; the matrix checks the form itself on each release."""
    from airflow_provider_cfbilling.hooks.cloudflare import CloudflareHook

    assert {"get_connection_form_widgets", "get_ui_field_behaviour"} <= set(vars(CloudflareHook))
    assert "password" in CloudflareHook.get_ui_field_behaviour()["relabeling"]
