"""The documented columns of each Cloudflare billing record source (data, read like the API documents).

The schemas are the documented fields of each endpoint's record, in the API's own key spelling
and in documented order: the OpenAPI ``required`` list first (in its order), then the remaining
properties as the spec lists them (the OpenAPI extract beside the repository, whose facts the
tests keep in ``tests/records/cloudflare_api_facts.json``). :mod:`airflow_provider_cfbilling.records`
re-exports everything here and holds the rules that read it (key styles, ``columns_for``). Pure
Python, no imports of the package or of Airflow.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

ColumnType = Literal["string", "number", "integer", "boolean", "timestamp"]


class Column(NamedTuple):
    """One documented field of a record.

    :param name: the key, in the API's spelling (``SCHEMAS``) or converted (``columns_for``).
    :param type: ``string``, ``number`` (float), ``integer``, ``boolean`` or ``timestamp``
        (an ISO 8601 ``date-time`` string on the wire). Nested objects (v2 ``Tags``) are
        ``string``: the sinks write them as compact JSON.
    """

    name: str
    type: ColumnType


SOURCES = ("v2", "paygo", "paygo-usage", "billable-usage", "profile", "subscriptions", "billing_history")
"""Record sources.

- ``v2``: ``GET /accounts/{account_id}/billable/usage`` (FOCUS 1.3 cost and usage).
- ``paygo``: ``GET /accounts/{account_id}/billing/usage/paygo`` (beta, 11 fields).
- ``paygo-usage``: ``GET /accounts/{account_id}/paygo-usage`` (v1 alpha, adds ``ServiceFamilyName``,
  ``SubscriptionId``, ``ZoneId``, ``ZoneName``).
- ``billable-usage``: ``GET /accounts/{account_id}/billable-usage`` (the newest, wide PayGo record).
- ``profile``: ``GET /accounts/{account_id}/billing/profile`` (snake_case keys already).
- ``subscriptions``: ``GET /accounts/{account_id}/subscriptions`` (plans; snake_case keys).
- ``billing_history``: ``GET /accounts/{account_id}/billing/history`` (charges; snake_case keys).

Organization usage (``GET /organizations/{organization_id}/billable/usage``) has the ``v2`` record.
"""


def _columns(*spec: tuple[str, ColumnType]) -> tuple[Column, ...]:
    return tuple(Column(name, kind) for name, kind in spec)


_PAYGO_BETA: tuple[tuple[str, ColumnType], ...] = (
    ("ChargePeriodStart", "timestamp"),
    ("ChargePeriodEnd", "timestamp"),
    ("BillingPeriodStart", "timestamp"),
    ("ServiceName", "string"),
    ("ConsumedQuantity", "number"),
    ("ConsumedUnit", "string"),
    ("PricingQuantity", "integer"),
    ("CumulatedPricingQuantity", "integer"),
    ("ContractedCost", "number"),
    ("CumulatedContractedCost", "number"),
    ("BillingCurrency", "string"),
)

SCHEMAS: dict[str, tuple[Column, ...]] = {
    "v2": _columns(
        # required
        ("ServiceProviderName", "string"),
        ("InvoiceIssuerName", "string"),
        ("HostProviderName", "string"),
        ("ChargePeriodStart", "timestamp"),
        ("ChargePeriodEnd", "timestamp"),
        ("x_BillableMetricId", "string"),
        ("ChargeCategory", "string"),
        ("ChargeFrequency", "string"),
        ("ChargeDescription", "string"),
        ("ConsumedQuantity", "number"),
        ("ConsumedUnit", "string"),
        # optional ("not yet populated" cost fields are absent or null)
        ("BilledCost", "number"),
        ("BillingAccountId", "string"),
        ("BillingAccountName", "string"),
        ("BillingCurrency", "string"),
        ("BillingPeriodEnd", "timestamp"),
        ("BillingPeriodStart", "timestamp"),
        ("ChargeClass", "string"),
        ("ContractedCost", "number"),
        ("ContractedUnitPrice", "number"),
        ("EffectiveCost", "number"),
        ("ListCost", "number"),
        ("ListUnitPrice", "number"),
        ("PricingQuantity", "number"),
        ("PricingUnit", "string"),
        ("RegionId", "string"),
        ("RegionName", "string"),
        ("SubAccountId", "string"),
        ("SubAccountName", "string"),
        ("Tags", "string"),  # an object of GroupBy tag values: written as compact JSON
        ("x_BillableMetricName", "string"),
        ("x_ProductCategoryName", "string"),
        ("x_ProductFamilyId", "string"),
        ("x_ProductFamilyName", "string"),
        ("x_ZoneId", "string"),
        ("x_ZoneName", "string"),
    ),
    "paygo": _columns(*_PAYGO_BETA),
    "paygo-usage": _columns(
        *_PAYGO_BETA,
        ("ServiceFamilyName", "string"),
        ("SubscriptionId", "string"),
        ("ZoneId", "string"),
        ("ZoneName", "string"),
    ),
    "billable-usage": _columns(
        # required (nullable ones carry an explicit null)
        ("ServiceProviderName", "string"),
        ("InvoiceIssuerName", "string"),
        ("HostProviderName", "string"),
        ("BillingAccountId", "string"),
        ("BillingAccountName", "string"),
        ("ServiceName", "string"),
        ("ChargeCategory", "string"),
        ("ChargeClass", "string"),
        ("ChargeDescription", "string"),
        ("ChargePeriodStart", "timestamp"),
        ("ChargePeriodEnd", "timestamp"),
        ("BillingPeriodStart", "timestamp"),
        ("BillingCurrency", "string"),
        ("ConsumedQuantity", "number"),
        ("ConsumedUnit", "string"),
        ("PricingQuantity", "integer"),
        ("PricingUnit", "string"),
        ("CumulatedPricingQuantity", "integer"),
        ("ListCost", "number"),
        ("ContractedCost", "number"),
        ("EffectiveCost", "number"),
        ("BilledCost", "number"),
        ("CumulatedContractedCost", "number"),
        # optional
        ("ServiceFamilyName", "string"),
        ("SubscriptionId", "string"),
        ("ZoneId", "string"),
        ("ZoneName", "string"),
    ),
    "profile": _columns(
        ("id", "string"),
        ("account_type", "string"),
        ("address", "string"),
        ("address2", "string"),
        ("balance", "string"),
        ("card_expiry_month", "integer"),
        ("card_expiry_year", "integer"),
        ("card_number", "string"),
        ("city", "string"),
        ("company", "string"),
        ("country", "string"),
        ("created_on", "timestamp"),
        ("device_data", "string"),
        ("edited_on", "timestamp"),
        ("enterprise_billing_email", "string"),
        ("enterprise_primary_email", "string"),
        ("first_name", "string"),
        ("is_partner", "boolean"),
        ("last_name", "string"),
        ("next_bill_date", "timestamp"),
        ("payment_address", "string"),
        ("payment_address2", "string"),
        ("payment_city", "string"),
        ("payment_country", "string"),
        ("payment_email", "string"),
        ("payment_first_name", "string"),
        ("payment_gateway", "string"),
        ("payment_last_name", "string"),
        ("payment_nonce", "string"),
        ("payment_state", "string"),
        ("payment_zipcode", "string"),
        ("primary_email", "string"),
        ("state", "string"),
        ("tax_id_type", "string"),
        ("telephone", "string"),
        ("use_legacy", "boolean"),
        ("validation_code", "string"),
        ("vat", "string"),
        ("zipcode", "string"),
    ),
    # cloudflare-python 5.9.0 types/shared/subscription.py (every field optional); the nested
    # rate_plan is written as compact JSON, like v2 Tags.
    "subscriptions": _columns(
        ("id", "string"),
        ("currency", "string"),
        ("current_period_start", "timestamp"),
        ("current_period_end", "timestamp"),
        ("frequency", "string"),
        ("price", "number"),
        ("state", "string"),
        ("rate_plan", "string"),
    ),
    # cloudflare-python 5.9.0 types/billing/history_list_response.py (every field optional).
    "billing_history": _columns(
        ("id", "string"),
        ("occurred_at", "timestamp"),
        ("type", "string"),
        ("action", "string"),
        ("description", "string"),
        ("amount", "number"),
        ("amount_to_pay", "number"),
        ("currency", "string"),
        ("status", "string"),
        ("invoice_id", "string"),
        ("external_invoice_id", "string"),
        ("hosted_invoice_url", "string"),
        ("receipt_id", "string"),
        ("source", "string"),
        ("source_invoice_id", "string"),
    ),
}


__all__ = ["SCHEMAS", "SOURCES", "Column", "ColumnType"]
