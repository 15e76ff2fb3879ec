"""The ``cloudflare`` connection's form in the Airflow 2.x, 3.0 and 3.1 UIs (from 3.2 the UI builds
it from ``conn-fields`` in the provider metadata, :mod:`airflow_provider_cfbilling.get_provider_info`)."""

from __future__ import annotations

from typing import Any

from airflow_provider_cfbilling.endpoints import DEFAULT_PAYGO_PATH, PAYGO_PATHS


class ConnectionForm:
    """The hook's extra form fields and relabelled standard fields (classmethods Airflow's
    providers manager looks up on the hook class)."""

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """Extra fields of the connection form for the Airflow 2.x / 3.0 / 3.1 UIs."""
        from flask_appbuilder.fieldwidgets import BS3TextFieldWidget
        from flask_babel import lazy_gettext
        from wtforms import BooleanField, IntegerField, StringField
        from wtforms.validators import NumberRange, Optional, any_of

        return {
            "account_id": StringField(lazy_gettext("Account ID"), widget=BS3TextFieldWidget()),
            "organization_id": StringField(lazy_gettext("Organization ID"), widget=BS3TextFieldWidget()),
            "timeout": IntegerField(
                lazy_gettext("Timeout (seconds)"),
                widget=BS3TextFieldWidget(),
                validators=[Optional(), NumberRange(min=1)],
            ),
            "max_retries": IntegerField(
                lazy_gettext("Max retries"), widget=BS3TextFieldWidget(), validators=[Optional(), NumberRange(min=0)]
            ),
            "verify": BooleanField(lazy_gettext("Verify TLS"), default=True),
            # The providers manager of Airflow 2.x / 3.0 / 3.1 accepts only String, Integer,
            # Password and Boolean fields (it drops the whole hook for a SelectField); the 3.0/3.1
            # UI turns ``any_of`` into the field's enum.
            "paygo_path": StringField(
                lazy_gettext("PayGo endpoint"),
                widget=BS3TextFieldWidget(),
                validators=[Optional(), any_of(PAYGO_PATHS)],
                default=DEFAULT_PAYGO_PATH,
            ),
        }

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Relabelled and hidden standard fields for the Airflow 2.x / 3.0 / 3.1 UIs."""
        from airflow_provider_cfbilling.get_provider_info import _ui_field_behaviour

        behaviour = _ui_field_behaviour()
        return {
            "hidden_fields": behaviour["hidden-fields"],
            "relabeling": behaviour["relabeling"],
            "placeholders": behaviour["placeholders"],
        }
