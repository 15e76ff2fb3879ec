"""The billing profile's personal and payment data is redacted; its shape is not."""

from __future__ import annotations

from airflow_provider_cfbilling.records import PROFILE_REDACTED_FIELDS, REDACTED, SCHEMAS, redact_profile

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


def test_every_documented_profile_field_is_either_redacted_or_deliberately_kept():
    documented = {column.name for column in SCHEMAS["profile"]}
    assert set(DOCUMENTED_EXAMPLE) == documented
    assert set(PROFILE_REDACTED_FIELDS) | KEPT == documented
    assert not set(PROFILE_REDACTED_FIELDS) & KEPT
    assert len(PROFILE_REDACTED_FIELDS) == len(set(PROFILE_REDACTED_FIELDS))


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


def test_null_and_absent_fields_stay_as_they_are():
    redacted = redact_profile({"id": "x", "card_number": None, "vat": None})
    assert redacted == {"id": "x", "card_number": None, "vat": None}


def test_undocumented_fields_that_look_personal_are_redacted_too():
    redacted = redact_profile(
        {
            "mobile_phone": "+44 20 7946 0958",
            "billing_contact_email": "jane@example.com",
            "iban": "GB33BUKB20201555555555",
            "payment_method_id": "pm_123",
            "tax_id": "12-3456789",
            "plan_tier": "pro",
        }
    )
    assert redacted == {
        "mobile_phone": REDACTED,
        "billing_contact_email": REDACTED,
        "iban": REDACTED,
        "payment_method_id": REDACTED,
        "tax_id": REDACTED,
        "plan_tier": "pro",
    }


def test_fields_are_matched_in_either_key_style():
    redacted = redact_profile({"CardNumber": "4242", "FirstName": "John", "AccountType": "type"})
    assert redacted == {"CardNumber": REDACTED, "FirstName": REDACTED, "AccountType": "type"}
