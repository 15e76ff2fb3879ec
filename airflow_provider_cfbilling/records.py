"""What a Cloudflare billing record is: its sources, documented columns, key styles and redaction.

Everything here is pure Python and runs per record, so it stays cheap: key conversions and
timestamp parses are cached, because a window of millions of records repeats the same few
dozen keys and the same few timestamps (one ``ChargePeriodStart`` per day).

The schemas are the documented fields of each endpoint's record, in the API's own key spelling
and in documented order: the OpenAPI ``required`` list first (in its order), then the remaining
properties as the spec lists them (the OpenAPI extract beside the repository, whose facts the
tests keep in ``tests/records/cloudflare_api_facts.json``).
Records are never trimmed to these columns: unknown fields are kept, in either key style.

Misuse by calling code (an unknown source or key style) raises ``ValueError``: this module imports
nothing of Airflow or of the package, so it has no ``CloudflareInputError``; the checks of user
input are :mod:`airflow_provider_cfbilling.validation`'s.

Why one module of about 480 lines: a third of it is the column tables (data, read like the API
documents), and the rest is small per-record functions that every path shares; split, a reader
would go back and forth between the tables and the rules that read them.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timezone
from functools import lru_cache
from typing import Any, Literal, NamedTuple

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

KEY_STYLES = ("api", "snake")
"""``api``: the API's own keys (``ChargePeriodStart``, ``x_BillableMetricId``); ``snake``: the
attribute names of the official ``cloudflare`` Python SDK's models (``charge_period_start``,
``x_billable_metric_id``)."""


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


# --------------------------------------------------------------------------------------------
# Key styles
# --------------------------------------------------------------------------------------------

# The SDK's generator (Stainless) derives attribute names from the API keys by splitting
# words at case changes: ``ChargePeriodStart`` -> ``charge_period_start``, ``x_BillableMetricId``
# -> ``x_billable_metric_id``. The same rule converts unknown fields, so a field Cloudflare adds
# tomorrow gets the name the next SDK release will give it. A test checks the rule against
# every field alias of the installed SDK's models.
_WORD_BOUNDARY = re.compile(
    r"(?<=[a-z0-9])(?=[A-Z])"  # lower or digit -> Upper: ChargePeriod, Address2Line
    r"|(?<=[A-Z])(?=[A-Z][a-z])"  # end of an acronym: SKUId -> SKU_Id
)
_REPEATED_UNDERSCORES = re.compile(r"_{2,}")

# Conversions are a dict lookup per key. Bounded, so a stream of ever-new keys cannot grow it
# without limit (past the bound, new keys are converted each time, correctly but uncached).
_SNAKE_CACHE_LIMIT = 10_000
_SNAKE_CACHE: dict[str, str] = {}


def _convert_to_snake(api_key: str) -> str:
    return _REPEATED_UNDERSCORES.sub("_", _WORD_BOUNDARY.sub("_", api_key)).lower()


def snake_key(api_key: str) -> str:
    """The ``snake`` style of one API key, e.g. ``ChargePeriodStart`` -> ``charge_period_start``.

    Keys that are snake_case already (the billing profile's) are returned unchanged.
    """
    converted = _SNAKE_CACHE.get(api_key)
    if converted is None:
        converted = _convert_to_snake(api_key)
        if len(_SNAKE_CACHE) < _SNAKE_CACHE_LIMIT:
            _SNAKE_CACHE[api_key] = converted
    return converted


for _schema in SCHEMAS.values():
    for _column in _schema:
        snake_key(_column.name)


def validate_key_style(value: Any) -> str:
    """Return ``value`` if it is one of :data:`KEY_STYLES`, else raise a ``ValueError`` that says so."""
    if value not in KEY_STYLES:
        allowed = ", ".join(repr(style) for style in KEY_STYLES)
        raise ValueError(f"key_style must be one of {allowed}; got {value!r}.")
    return str(value)


def _to_snake(record: dict[str, Any]) -> dict[str, Any]:
    cached = _SNAKE_CACHE.get
    return {(cached(key) or snake_key(key)): value for key, value in record.items()}


def apply_key_style(record: dict[str, Any], key_style: str) -> dict[str, Any]:
    """Return ``record`` with its top-level keys in ``key_style``.

    ``"api"`` returns the record itself (no copy). ``"snake"`` returns a new dict with the same
    values in the same order; unknown keys are converted by the same rule, never dropped. Nested
    objects (``Tags``) keep their keys: they are user data, not field names.
    """
    if key_style == "snake":
        return _to_snake(record)
    if key_style != "api":
        validate_key_style(key_style)
    return record


def _validate_source(source: str) -> None:
    if source not in SCHEMAS:
        allowed = ", ".join(repr(name) for name in SOURCES)
        raise ValueError(f"source must be one of {allowed}; got {source!r}.")


def columns_for(source: str, key_style: str = "api") -> list[Column]:
    """The documented columns of ``source`` records, named in ``key_style``, in documented order."""
    _validate_source(source)
    validate_key_style(key_style)
    if key_style == "api":
        return list(SCHEMAS[source])
    return [Column(snake_key(column.name), column.type) for column in SCHEMAS[source]]


# --------------------------------------------------------------------------------------------
# Billing profile redaction
# --------------------------------------------------------------------------------------------

# The keys every usage record is placed and filtered by (API key style).
CHARGE_PERIOD_START = "ChargePeriodStart"
METRIC_ID = "x_BillableMetricId"

REDACTED = "[REDACTED]"

# An allow-list, not a deny-list: the profile carries names, addresses and card data, and
# Cloudflare adds fields without notice (``mobile``, ``dob``, a nested ``billing_contact``...).
# A field nobody has looked at yet is redacted until someone decides it is safe to keep.
PROFILE_KEPT_FIELDS: tuple[str, ...] = (
    # "Billing item identifier tag": an opaque tag Cloudflare generates for the profile record,
    # what joins and deduplicates snapshots; it names the record, not a person.
    "id",
    # the kind of account (self-serve, enterprise...): what is billed, not who.
    "account_type",
    # the amount owed or in credit: the figure the snapshot exists for; an amount, no instrument.
    "balance",
    # when the profile was created and last changed: bookkeeping of the record itself.
    "created_on",
    "edited_on",
    # whether the account is billed through a Cloudflare partner: a flag about the contract.
    "is_partner",
    # when the next invoice is cut: the billing cycle FinOps plans by.
    "next_bill_date",
    # the kind of tax registration ("vat"); the number itself (``vat``) identifies the holder.
    "tax_id_type",
    # which billing system the account is on: a flag (SDK models up to 5.6.0 only).
    "use_legacy",
)
"""The list of billing-profile fields kept as they are; every other non-null value is redacted.

What a FinOps report needs and none of it personal or payment data, in documented order. Not
kept, although documented: names, company (a sole trader's is their name), emails, telephone,
postal and payment addresses (country included, as part of the address), ``vat``, card data,
``validation_code``, ``payment_nonce``, ``payment_gateway`` and ``device_data``. Fields
Cloudflare adds later are redacted too, until they are added here.
"""

_PROFILE_KEPT = frozenset(PROFILE_KEPT_FIELDS)

# Derived, not a list to maintain: the documented fields that are redacted (for docs and checks;
# redaction itself reads only the allow-list, so undocumented fields are redacted too).
PROFILE_REDACTED_FIELDS: tuple[str, ...] = tuple(
    column.name for column in SCHEMAS["profile"] if column.name not in _PROFILE_KEPT
)


def _is_kept_profile_field(key: str) -> bool:
    # The profile's own keys are snake_case already: the set lookup settles them without a
    # conversion; api-style keys (``AccountType``) are matched by their snake form.
    return key in _PROFILE_KEPT or snake_key(key) in _PROFILE_KEPT


def redact_profile(record: dict[str, Any]) -> dict[str, Any]:
    """Return a copy of a billing profile with personal and payment values replaced by ``"[REDACTED]"``.

    Only :data:`PROFILE_KEPT_FIELDS` keep their values. Every other non-null value is replaced
    whole, nested objects and lists included, and so is any field Cloudflare adds later: a new
    field is presumed personal until it is reviewed. Every key is kept, in its place, so the shape
    does not depend on redaction; null values stay null (nothing to hide). Keys are matched in
    either key style.
    """
    return {key: (value if value is None or _is_kept_profile_field(key) else REDACTED) for key, value in record.items()}


# --------------------------------------------------------------------------------------------
# Billing history redaction
# --------------------------------------------------------------------------------------------

# A billing history item can carry links that open an invoice (and pay it) without a login: a
# bearer credential in a URL. Matched by name, so links Cloudflare adds later are caught too.
_SECRET_LINK_HINT = re.compile(r"url|link|token|secret", re.IGNORECASE)


def redact_billing_history(record: dict[str, Any]) -> dict[str, Any]:
    """A copy of a billing history item with every link-like field (``hosted_invoice_url``, and
    any field whose name holds ``url``, ``link``, ``token`` or ``secret``) replaced by
    ``"[REDACTED]"``; null stays null, keys keep their place."""
    return {
        key: (REDACTED if value is not None and _SECRET_LINK_HINT.search(key) else value)
        for key, value in record.items()
    }


# --------------------------------------------------------------------------------------------
# Timestamps
# --------------------------------------------------------------------------------------------

# Python 3.10's fromisoformat accepts neither "Z" nor fractions other than 3 or 6 digits; this
# slower path covers what the fast path does not.
_ISO_TIMESTAMP = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})"
    r"(?:[T ](?P<time>\d{2}:\d{2}(?::\d{2})?)(?:[.,](?P<fraction>\d+))?)?"
    r"\s*(?P<offset>[Zz]|[+-]\d{2}(?::?\d{2})?)?"
)


def _parse_iso_slow(value: str) -> datetime:
    match = _ISO_TIMESTAMP.fullmatch(value.strip())
    if match is None:
        raise ValueError(f"not an ISO 8601 timestamp: {value!r}")
    text = match["date"] + "T" + (match["time"] or "00:00")
    if match["fraction"]:
        text += "." + match["fraction"][:6].ljust(6, "0")
    offset = match["offset"]
    if offset and offset not in ("Z", "z"):
        sign, digits = offset[0], offset[1:].replace(":", "")
        text += f"{sign}{digits[:2]}:{digits[2:4] or '00'}"
    return datetime.fromisoformat(text)


@lru_cache(maxsize=65_536)
def _parse_timestamp_text(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        parsed = _parse_iso_slow(value)
    if parsed.tzinfo is None:
        # The API's timestamps are UTC; one without an offset is read as UTC, not local time.
        return parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def parse_timestamp(value: str | datetime | date) -> datetime:
    """Parse an ISO 8601 timestamp to an aware UTC ``datetime``.

    Accepts ``Z`` and numeric offsets (converted to UTC), any number of fractional digits (kept to
    microseconds), and a bare date (midnight UTC); a value without an offset is taken as UTC.
    Strings are cached: a usage window repeats the same few ``ChargePeriodStart`` values.

    :raises ValueError: if ``value`` is not an ISO 8601 date or timestamp.
    """
    if isinstance(value, str):
        return _parse_timestamp_text(value)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=timezone.utc)
    raise ValueError(f"not an ISO 8601 timestamp: {value!r}")


__all__ = [
    "KEY_STYLES",
    "PROFILE_KEPT_FIELDS",
    "REDACTED",
    "SCHEMAS",
    "SOURCES",
    "Column",
    "ColumnType",
    "apply_key_style",
    "columns_for",
    "parse_timestamp",
    "redact_profile",
    "snake_key",
    "validate_key_style",
]
