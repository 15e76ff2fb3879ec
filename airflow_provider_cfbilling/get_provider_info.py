"""Provider metadata read by Airflow's providers manager through the ``apache_airflow_provider`` entry point.

Imports nothing from the package but the pure-Python endpoint registry: the providers manager
calls it while Airflow itself is still starting up.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_cfbilling.endpoints import PAYGO_PATHS


def _connection_fields() -> dict[str, Any]:
    """The ``cloudflare`` connection's extra fields, in the declarative form of Airflow 3.2+."""
    return {
        "account_id": {
            "label": "Account ID",
            "description": "Default Cloudflare account (32 hexadecimal characters) for every call.",
            "schema": {"type": ["string", "null"], "pattern": "^[0-9a-fA-F]{32}$"},
        },
        "organization_id": {
            "label": "Organization ID",
            "description": "Optional: v2 usage tasks then read every account of this organization.",
            "schema": {"type": ["string", "null"], "pattern": "^[0-9a-fA-F]{32}$"},
        },
        "timeout": {
            "label": "Timeout (seconds)",
            "description": "Per-request timeout. Default 60.",
            "schema": {"type": ["number", "null"], "minimum": 0},
        },
        "max_retries": {
            "label": "Max retries",
            "description": "Retries of 408/409/429/5xx and network errors. Default 8.",
            "schema": {"type": ["integer", "null"], "minimum": 0},
        },
        "verify": {
            "label": "Verify TLS",
            "description": "Verify the server's TLS certificate. Default true.",
            "schema": {"type": ["boolean", "null"], "default": True},
        },
        "paygo_path": {
            "label": "PayGo endpoint",
            "description": "Which PayGo usage path the account can reach. Default billable-usage.",
            "schema": {"type": ["string", "null"], "enum": [*PAYGO_PATHS, None]},
        },
    }


def _ui_field_behaviour() -> dict[str, Any]:
    return {
        "hidden-fields": ["schema", "port"],
        "relabeling": {
            "host": "Base URL",
            "login": "Email (global API key only)",
            "password": "API token, or global API key when Email is set",
        },
        "placeholders": {
            "host": "https://api.cloudflare.com/client/v4",
            "login": "leave empty when using an API token",
            "password": "API token with Billing Read",
            "account_id": "023e105f4ecef8ad9ca31a8372d0c353",
            "timeout": "60",
            "max_retries": "8",
            "paygo_path": "billable-usage",
        },
    }


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-provider-cfbilling",
        "name": "Cloudflare Billing",
        "description": "Cloudflare billing data (PayGo usage, v2 FOCUS usage, billing profile) for Airflow.",
        "integrations": [
            {
                "integration-name": "Cloudflare Billing",
                "external-doc-url": "https://developers.cloudflare.com/api/",
                "tags": ["service"],
            }
        ],
        "hooks": [
            {
                "integration-name": "Cloudflare Billing",
                "python-modules": ["airflow_provider_cfbilling.hooks.cloudflare"],
            }
        ],
        "operators": [
            {
                "integration-name": "Cloudflare Billing",
                "python-modules": ["airflow_provider_cfbilling.operators.billing"],
            }
        ],
        "sensors": [
            {
                "integration-name": "Cloudflare Billing",
                "python-modules": ["airflow_provider_cfbilling.sensors.billing"],
            }
        ],
        "triggers": [
            {
                "integration-name": "Cloudflare Billing",
                "python-modules": ["airflow_provider_cfbilling.triggers.billing"],
            }
        ],
        "transfers": [
            {
                "source-integration-name": "Cloudflare Billing",
                "target-integration-name": "Common SQL",
                "python-module": "airflow_provider_cfbilling.transfers.cloudflare_to_sql",
            }
        ],
        "connection-types": [
            {
                "connection-type": "cloudflare",
                "hook-class-name": "airflow_provider_cfbilling.hooks.cloudflare.CloudflareHook",
                "hook-name": "Cloudflare",
                "conn-fields": _connection_fields(),
                "ui-field-behaviour": _ui_field_behaviour(),
            }
        ],
    }
