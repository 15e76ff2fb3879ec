"""What a Cloudflare billing record is: its sources, documented columns, key styles and redaction.

Everything here is pure Python and runs per record, so it stays cheap: key conversions and
timestamp parses are cached, because a window of millions of records repeats the same few
dozen keys and the same few timestamps (one ``ChargePeriodStart`` per day).

The documented columns of each source (``SCHEMAS``, ``Column``, ``SOURCES``) are in
:mod:`airflow_provider_cfbilling.record_columns` and re-exported here. Records are never trimmed to these columns: unknown fields are kept, in either key style.

Misuse by calling code (an unknown source or key style) raises ``ValueError``: this module imports
nothing of Airflow and of the package only its column tables, so it has no ``CloudflareInputError``;
the checks of user input are :mod:`airflow_provider_cfbilling.validation`'s.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timezone
from functools import lru_cache
from typing import Any

from airflow_provider_cfbilling.record_columns import SCHEMAS, SOURCES, Column, ColumnType

KEY_STYLES = ("api", "snake")
"""``api``: the API's own keys (``ChargePeriodStart``, ``x_BillableMetricId``); ``snake``: the
attribute names of the official ``cloudflare`` Python SDK's models (``charge_period_start``,
``x_billable_metric_id``)."""


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
