"""The ``cloudflare`` connection form, as each supported Airflow version builds it.

- Airflow 2.x: the Flask (FAB) UI builds the form from the hook's ``get_connection_form_widgets()``
  (real WTForms fields, of the four classes the providers manager accepts) and
  ``get_ui_field_behaviour()``.
- Airflow 3.0 / 3.1: the React UI asks ``HookMetaService``, which imports the hook with WTForms and
  FAB mocked and turns the same Python methods into JSON-schema fields.
- Airflow 3.2+: the declarative ``conn-fields`` / ``ui-field-behaviour`` of ``get_provider_info()``
  are read without importing the hook; the Python methods are not used.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from airflow_provider_cfbilling.get_provider_info import PAYGO_PATHS
from airflow_provider_cfbilling.version_compat import AIRFLOW_V_3_0_PLUS, AIRFLOW_V_3_2_PLUS

FIELDS = ("account_id", "organization_id", "timeout", "max_retries", "verify", "paygo_path")
WIDGETS = {f"extra__cloudflare__{field}" for field in FIELDS}
RELABELED = {
    "host": "Base URL",
    "login": "Email (global API key only)",
    "password": "API token, or global API key when Email is set",
}


@pytest.fixture(scope="module")
def providers_manager() -> Any:
    from airflow.providers_manager import ProvidersManager

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 3.3 deprecates ProvidersManager.hooks for task code
        manager = ProvidersManager()
        manager.hooks  # noqa: B018 - loads the hooks, their widgets and field behaviours
    return manager


def test_the_providers_manager_exposes_the_extra_fields_as_widgets(providers_manager: Any) -> None:
    widgets = {name: info for name, info in providers_manager.connection_form_widgets.items() if "cloudflare" in name}
    assert set(widgets) == WIDGETS
    assert {info.field_name for info in widgets.values()} == set(FIELDS)
    assert all(info.package_name == "airflow-provider-cfbilling" for info in widgets.values())
    assert not any(info.is_sensitive for info in widgets.values())


def test_the_providers_manager_exposes_hidden_and_relabeled_standard_fields(providers_manager: Any) -> None:
    behaviour = providers_manager.field_behaviours["cloudflare"]
    assert set(behaviour["hidden_fields"]) == {"schema", "port"}
    assert behaviour["relabeling"] == RELABELED
    assert behaviour["placeholders"]["host"] == "https://api.cloudflare.com/client/v4"
    assert behaviour["placeholders"]["extra__cloudflare__account_id"] == "023e105f4ecef8ad9ca31a8372d0c353"


def test_the_hook_is_registered_and_testable(providers_manager: Any) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hook = providers_manager.hooks["cloudflare"]
    assert hook is not None
    assert hook.hook_class_name == "airflow_provider_cfbilling.hooks.cloudflare.CloudflareHook"
    assert hook.hook_name == "Cloudflare"
    assert hook.connection_id_attribute_name == "cloudflare_conn_id"
    assert hook.connection_testable


@pytest.mark.skipif(AIRFLOW_V_3_2_PLUS, reason="Airflow 3.2+ builds the form from conn-fields, not WTForms")
def test_before_3_2_the_widgets_are_wtforms_fields_of_the_accepted_classes(providers_manager: Any) -> None:
    from wtforms import BooleanField, IntegerField, StringField
    from wtforms.validators import AnyOf

    widgets = providers_manager.connection_form_widgets
    classes = {name.rsplit("__", 1)[1]: widgets[name].field.field_class for name in WIDGETS}
    assert classes == {
        "account_id": StringField,
        "organization_id": StringField,
        "timeout": IntegerField,
        "max_retries": IntegerField,
        "verify": BooleanField,
        "paygo_path": StringField,
    }
    paygo = widgets["extra__cloudflare__paygo_path"].field
    (any_of,) = [validator for validator in paygo.kwargs["validators"] if isinstance(validator, AnyOf)]
    assert list(any_of.values) == PAYGO_PATHS


@pytest.mark.skipif(not AIRFLOW_V_3_2_PLUS, reason="conn-fields are read from provider info on Airflow 3.2+ only")
def test_from_3_2_the_widgets_come_from_conn_fields_without_importing_wtforms(providers_manager: Any) -> None:
    widgets = providers_manager.connection_form_widgets
    account = widgets["extra__cloudflare__account_id"].field
    assert isinstance(account, dict), "a JSON-schema field, not a WTForms one"
    assert account["schema"]["pattern"] == "^[0-9a-fA-F]{32}$"
    assert widgets["extra__cloudflare__paygo_path"].field["schema"]["enum"] == [*PAYGO_PATHS, None]


@pytest.mark.skipif(AIRFLOW_V_3_0_PLUS, reason="the Flask (FAB) connection form is the Airflow 2 UI")
def test_airflow_2_flask_connection_form_has_the_type_and_its_fields() -> None:
    from airflow.www.forms import create_connection_form_class

    form_class = create_connection_form_class()
    assert all(hasattr(form_class, name) for name in WIDGETS)
    choices = dict(form_class.conn_type.kwargs["choices"])
    assert choices["cloudflare"] == "Cloudflare"


@pytest.mark.skipif(not AIRFLOW_V_3_0_PLUS, reason="the React UI's hook metadata is Airflow 3")
def test_airflow_3_ui_hook_metadata_offers_the_form() -> None:
    from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService

    with warnings.catch_warnings(), _hooks_not_imported_yet():
        warnings.simplefilter("ignore")
        HookMetaService.hook_meta_data.cache_clear()
        (meta,) = [item for item in HookMetaService.hook_meta_data() if item.connection_type == "cloudflare"]
    assert meta.hook_name == "Cloudflare"
    standard = meta.standard_fields
    assert standard.url_schema.hidden and standard.port.hidden
    assert not standard.host.hidden
    assert (standard.host.title, standard.login.title, standard.password.title) == (
        RELABELED["host"],
        RELABELED["login"],
        RELABELED["password"],
    )
    extra = {name: _schema(field) for name, field in meta.extra_fields.items()}
    assert set(extra) == set(FIELDS)
    assert extra["account_id"]["title"] == "Account ID"
    assert "integer" in extra["max_retries"]["type"]
    assert "boolean" in extra["verify"]["type"]
    assert [path for path in extra["paygo_path"]["enum"] if path is not None] == PAYGO_PATHS


@contextmanager
def _hooks_not_imported_yet() -> Iterator[None]:
    """The providers manager as the API server has it when the UI first asks for hook metadata: no
    hook imported yet. This module's fixture imported them with the real WTForms; before 3.2 the UI
    must import them under its own WTForms mocks, which 3.0 arranges itself and 3.1 takes for
    granted. Cleared again afterwards, so later tests import the real fields."""
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    manager._cleanup()
    manager._init_airflow_core_hooks()
    try:
        yield
    finally:
        manager._cleanup()
        manager._init_airflow_core_hooks()


def _schema(field: Any) -> dict[str, Any]:
    """A UI extra field's JSON schema (a dumped ``Param`` on 3.0/3.1, a conn-fields entry on 3.2+)."""
    return dict(field["schema"])
