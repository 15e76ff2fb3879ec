"""The ``cloudflare`` connection's form in the Airflow 2.x, 3.0 and 3.1 UIs (from 3.2 the UI builds
it from ``conn-fields`` in the provider metadata, :mod:`airflow_provider_cfbilling.get_provider_info`).

The hook's ``get_connection_form_widgets`` and ``get_ui_field_behaviour`` return these. They must be
defined on the hook class itself: Airflow's providers manager looks them up in the class's own
``__dict__``, so an inherited one is not seen.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_cfbilling.endpoints import DEFAULT_PAYGO_PATH, PAYGO_PATHS


def widgets() -> dict[str, Any]:
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


def field_behaviour() -> dict[str, Any]:
    """Relabelled and hidden standard fields for the Airflow 2.x / 3.0 / 3.1 UIs."""
    from airflow_provider_cfbilling.get_provider_info import _ui_field_behaviour

    behaviour = _ui_field_behaviour()
    return {
        "hidden_fields": behaviour["hidden-fields"],
        "relabeling": behaviour["relabeling"],
        "placeholders": behaviour["placeholders"],
    }
