"""The billing profile's personal and payment data is redacted; its shape is not."""

from __future__ import annotations

from airflow_provider_cfbilling.records import (
    PROFILE_KEPT_FIELDS,
    PROFILE_REDACTED_FIELDS,
    REDACTED,
    SCHEMAS,
    redact_profile,
    snake_key,
)

DOCUMENTED_EXAMPLE = {
    "id": "b69a9f3492637782896352daae219e7d",
    "account_type": "type",
    "address": "123 Main Street",
    "address2": "Apt 1",
    "balance": "0",
    "card_expiry_month": 12,
    "card_expiry_year": 2099,
    "card_number": "4242424242424242",
    "city": "Anytown",
    "company": "Company",
    "country": "Anycountry",
    "created_on": "2014-03-01T12:21:59.3456Z",
    "device_data": "sample_data",
    "edited_on": "2014-03-01T12:21:59.3456Z",
    "enterprise_billing_email": "johndoe@gmail.com",
    "enterprise_primary_email": "johndoe@gmail.com",
    "first_name": "John",
    "is_partner": False,
    "last_name": "Doe",
    "next_bill_date": "2014-03-01T12:21:59.3456Z",
    "payment_address": "123 Main Street",
    "payment_address2": "Apt 1",
    "payment_city": "Anytown",
    "payment_country": "Anycountry",
    "payment_email": "johndoe@gmail.com",
    "payment_first_name": "John",
    "payment_gateway": "gateway",
    "payment_last_name": "Doe",
    "payment_nonce": "abc123",
    "payment_state": "state",
    "payment_zipcode": "12345",
    "primary_email": "johndoe@gmail.com",
    "state": "AnyState",
    "tax_id_type": "type",
    "telephone": "1234567899",
    "use_legacy": True,
    "validation_code": "1111",
    "vat": "GB123456789",
    "zipcode": "12345",
}

KEPT = {
    "id",
    "account_type",
    "balance",
    "created_on",
    "edited_on",
    "is_partner",
    "next_bill_date",
    "tax_id_type",
    "use_legacy",
}


def test_the_allow_list_is_the_reviewed_set_of_documented_fields():
    documented = [column.name for column in SCHEMAS["profile"]]
    assert set(DOCUMENTED_EXAMPLE) == set(documented)
    assert set(PROFILE_KEPT_FIELDS) == KEPT
    assert len(PROFILE_KEPT_FIELDS) == len(KEPT), "no duplicates"
    assert list(PROFILE_KEPT_FIELDS) == [name for name in documented if name in KEPT], "documented order"
    # The derived name older tests import: exactly the documented fields that are not kept.
    assert tuple(name for name in documented if name not in KEPT) == PROFILE_REDACTED_FIELDS


def test_personal_and_payment_values_are_redacted_and_the_rest_kept():
    redacted = redact_profile(DOCUMENTED_EXAMPLE)

    assert list(redacted) == list(DOCUMENTED_EXAMPLE), "same keys, same order"
    for key, value in redacted.items():
        if key in KEPT:
            assert value == DOCUMENTED_EXAMPLE[key], key
        else:
            assert value == REDACTED == "[REDACTED]", key
    assert "4242424242424242" not in repr(redacted)
    assert "johndoe" not in repr(redacted)


def test_redaction_does_not_modify_the_input():
    original = dict(DOCUMENTED_EXAMPLE)
    redact_profile(original)
    assert original == DOCUMENTED_EXAMPLE


def test_undocumented_fields_are_redacted_whatever_their_name():
    """Fields Cloudflare may add: no name pattern decides, only the allow-list."""
    redacted = redact_profile(
        {
            "mobile": "+44 7700 900123",
            "street": "1 High Street",
            "postcode": "SW1A 1AA",
            "dob": "1970-01-01",
            "bic": "BUKBGB22",
            "plan_tier": "pro",
            "loyalty_points": 1200,
            "verified": True,
        }
    )
    assert redacted == dict.fromkeys(
        ("mobile", "street", "postcode", "dob", "bic", "plan_tier", "loyalty_points", "verified"), REDACTED
    )


def test_nested_objects_and_lists_are_redacted_whole():
    profile = {
        "id": "b69a",
        "billing_contact": {"email": "jane@example.com", "name": "Jane Doe"},
        "previous_addresses": ["1 High Street", {"city": "Anytown"}],
        "tags": [],
        "extra": {},
    }
    redacted = redact_profile(profile)
    assert redacted == {
        "id": "b69a",
        "billing_contact": REDACTED,
        "previous_addresses": REDACTED,
        "tags": REDACTED,
        "extra": REDACTED,
    }
    assert "jane@example.com" not in repr(redacted)
    assert profile["billing_contact"] == {"email": "jane@example.com", "name": "Jane Doe"}, "input untouched"


def test_allowed_fields_keep_their_values_whatever_their_type():
    kept = {
        "id": "b69a9f3492637782896352daae219e7d",
        "account_type": "enterprise",
        "balance": "-12.50",
        "created_on": "2014-03-01T12:21:59.3456Z",
        "edited_on": "2024-03-01T00:00:00Z",
        "is_partner": True,
        "next_bill_date": "2025-07-01T00:00:00Z",
        "tax_id_type": "vat",
        "use_legacy": False,
    }
    assert set(kept) == set(PROFILE_KEPT_FIELDS)
    assert redact_profile(kept) == kept


def test_fields_are_matched_in_either_key_style():
    snake = {name: DOCUMENTED_EXAMPLE[name] for name in ("card_number", "first_name", "account_type", "is_partner")}
    snake["mobile"] = "+44 7700 900123"
    api = {
        "CardNumber": "4242",
        "FirstName": "John",
        "AccountType": "type",
        "IsPartner": False,
        "NextBillDate": "2025",
        "Mobile": "+44 7700 900123",
        "BillingContact": {"Email": "jane@example.com"},
    }
    assert redact_profile(snake) == {
        "card_number": REDACTED,
        "first_name": REDACTED,
        "account_type": "type",
        "is_partner": False,
        "mobile": REDACTED,
    }
    assert redact_profile(api) == {
        "CardNumber": REDACTED,
        "FirstName": REDACTED,
        "AccountType": "type",
        "IsPartner": False,
        "NextBillDate": "2025",
        "Mobile": REDACTED,
        "BillingContact": REDACTED,
    }
    # Every kept field, in its api spelling, is kept; every other documented one, redacted.
    as_api = {
        "".join(part.capitalize() for part in name.split("_")): value for name, value in DOCUMENTED_EXAMPLE.items()
    }
    assert all(snake_key(key) in DOCUMENTED_EXAMPLE for key in as_api)
    for key, value in redact_profile(as_api).items():
        assert value == (as_api[key] if snake_key(key) in KEPT else REDACTED), key


def test_null_stays_null_for_every_field_kept_or_not():
    profile = {"id": None, "card_number": None, "mobile": None, "billing_contact": None, "AccountType": None}
    assert redact_profile(profile) == profile


def test_keys_keep_their_place():
    profile = {"mobile": "+44", "id": "x", "billing_contact": {"email": "a@b"}, "balance": "0", "dob": None}
    redacted = redact_profile(profile)
    assert list(redacted) == ["mobile", "id", "billing_contact", "balance", "dob"]
    assert redacted == {"mobile": REDACTED, "id": "x", "billing_contact": REDACTED, "balance": "0", "dob": None}
