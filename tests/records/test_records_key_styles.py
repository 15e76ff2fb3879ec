"""key_style="snake" gives exactly the official Cloudflare SDK's attribute names."""

from __future__ import annotations

import pytest

from airflow_provider_cfbilling.records import (
    KEY_STYLES,
    SCHEMAS,
    apply_key_style,
    columns_for,
    snake_key,
    validate_key_style,
)


def _sdk_models():
    """The SDK's record models, by source (``cloudflare`` is a test-only dependency)."""
    from cloudflare.types.billing.profile_get_response import ProfileGetResponse
    from cloudflare.types.billing.usage_get_account_usage_v1_response import UsageGetAccountUsageV1ResponseItem
    from cloudflare.types.billing.usage_get_account_usage_v2_response import UsageGetAccountUsageV2ResponseItem
    from cloudflare.types.billing.usage_get_response import UsageGetResponseItem
    from cloudflare.types.billing.usage_paygo_response import UsagePaygoResponseItem

    return {
        # v2: GET /billable/usage (UsageGetResponseItem, and its newer alias class)
        "v2": [UsageGetResponseItem, UsageGetAccountUsageV2ResponseItem],
        # billable-usage: since 5.7 the paygo() models describe GET /billable-usage
        "billable-usage": [UsagePaygoResponseItem, UsageGetAccountUsageV1ResponseItem],
        "profile": [ProfileGetResponse],
    }


def _aliases(model) -> dict[str, str]:
    """``{API key: attribute name}`` for every field of a pydantic model."""
    return {(field.alias or name): name for name, field in model.model_fields.items()}


def test_the_sdk_is_the_version_the_mapping_was_proven_against():
    import cloudflare

    major, minor = (int(part) for part in cloudflare.__version__.split(".")[:2])
    assert (major, minor) >= (5, 9)


@pytest.mark.parametrize("source", ["v2", "billable-usage", "profile"])
def test_snake_key_of_every_sdk_alias_is_the_sdk_attribute_name(source):
    for model in _sdk_models()[source]:
        aliases = _aliases(model)
        assert aliases, model
        for api_key, attribute in aliases.items():
            assert snake_key(api_key) == attribute, f"{model.__name__}.{attribute} (alias {api_key})"


@pytest.mark.parametrize("source", ["v2", "billable-usage", "profile"])
def test_our_schema_has_exactly_the_sdk_fields(source):
    for model in _sdk_models()[source]:
        sdk_keys = set(_aliases(model))
        assert {column.name for column in SCHEMAS[source]} >= sdk_keys
        assert {column.name for column in columns_for(source, "snake")} >= set(_aliases(model).values())
    # The only documented fields the 5.9 SDK models lack are the profile's write-only ones.
    missing = {column.name for column in SCHEMAS[source]} - set().union(
        *(_aliases(model) for model in _sdk_models()[source])
    )
    assert missing <= {"device_data", "payment_gateway", "payment_nonce", "use_legacy"}


def test_the_older_paygo_records_are_subsets_of_the_wide_one_so_the_sdk_proof_covers_them():
    wide = {column.name for column in SCHEMAS["billable-usage"]}
    assert {column.name for column in SCHEMAS["paygo"]} <= wide
    assert {column.name for column in SCHEMAS["paygo-usage"]} <= wide


@pytest.mark.parametrize(
    ("api_key", "expected"),
    [
        ("ChargePeriodStart", "charge_period_start"),
        ("x_BillableMetricId", "x_billable_metric_id"),
        ("x_FutureField", "x_future_field"),
        ("BillingAccountId", "billing_account_id"),
        ("RegionId", "region_id"),
        ("Tags", "tags"),
        ("BillingAccountID", "billing_account_id"),
        ("SKUId", "sku_id"),
        ("Address2Line", "address2_line"),
        ("address2", "address2"),
        ("card_expiry_month", "card_expiry_month"),
        ("already_snake_case", "already_snake_case"),
    ],
)
def test_snake_key(api_key, expected):
    assert snake_key(api_key) == expected


def test_snake_key_is_cached():
    key = "x_SomethingNewFromCloudflare"
    first = snake_key(key)
    assert snake_key(key) is first


def test_api_style_returns_the_record_itself():
    record = {"ChargePeriodStart": "2025-02-01T00:00:00Z", "x_Unknown": 1}
    assert apply_key_style(record, "api") is record


def test_snake_style_converts_every_key_and_keeps_values_order_and_unknown_fields():
    record = {
        "ChargePeriodStart": "2025-02-01T00:00:00Z",
        "x_BillableMetricId": "workers_standard_requests",
        "ConsumedQuantity": 150000,
        "x_FutureField": None,
        "Tags": {"TeamName": "fintech", "key-only": True},
    }

    snake = apply_key_style(record, "snake")

    assert list(snake) == [
        "charge_period_start",
        "x_billable_metric_id",
        "consumed_quantity",
        "x_future_field",
        "tags",
    ]
    assert list(snake.values()) == list(record.values())
    assert snake["tags"] == {"TeamName": "fintech", "key-only": True}, "nested keys are data, kept as sent"
    assert record["ChargePeriodStart"] == "2025-02-01T00:00:00Z", "the input is not modified"


def test_snake_style_of_a_profile_changes_nothing():
    record = {"id": "b69a", "first_name": "John", "address2": "Apt 1"}
    assert apply_key_style(record, "snake") == record


@pytest.mark.parametrize("bad", ["camel", "API", "", None, 1])
def test_a_bad_key_style_names_the_parameter_the_value_and_the_choices(bad):
    with pytest.raises(ValueError) as error:
        validate_key_style(bad)
    message = str(error.value)
    assert "key_style" in message
    assert repr(bad) in message
    assert "'api'" in message and "'snake'" in message
    with pytest.raises(ValueError, match="key_style"):
        apply_key_style({"A": 1}, bad)


@pytest.mark.parametrize("style", KEY_STYLES)
def test_validate_key_style_returns_a_good_value(style):
    assert validate_key_style(style) == style
