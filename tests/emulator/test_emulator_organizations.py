"""Organization usage over real loopback HTTP: ``/organizations/{id}/billable/usage`` serves the union of
its accounts' v2 records (restated days too), under the v2 rules, auth, faults and switches."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import httpx
import pytest
from emulator_helpers import (
    ACCOUNT,
    BEARER,
    FROZEN,
    ORGANIZATION,
    OTHER_ACCOUNT,
    organization_usage_path,
    usage_path,
)

from airflow_provider_cfbilling.emulator import (
    DEFAULT_ACCOUNT_TOKEN,
    DEFAULT_EMAIL,
    DEFAULT_GLOBAL_KEY,
    DEFAULT_ORGANIZATION_ACCOUNTS,
    DEFAULT_ORGANIZATION_ID,
    NO_BILLING_TOKEN,
    ROUTES,
    Emulator,
)
from airflow_provider_cfbilling.emulator.cli import build_emulator, build_parser

ORG_PATH = organization_usage_path()
UNKNOWN_ORGANIZATION = "9" * 32
CUSTOM_ORGANIZATION = "c" * 32
THIRD_ACCOUNT = "fedcba9876543210fedcba9876543210"
WINDOW = {"from": "2026-01-05", "to": "2026-01-08"}


def day_of(record: dict[str, Any]) -> str:
    return str(record["ChargePeriodStart"][:10])


def account_records(client: httpx.Client, account_id: str, params: dict[str, str]) -> list[dict[str, Any]]:
    response = client.get(usage_path("v2", account_id), params=params)
    assert response.status_code == 200, response.text
    return list(response.json()["result"])


def union_by_day_then_account(
    client: httpx.Client, accounts: list[str], params: dict[str, str]
) -> list[dict[str, Any]]:
    """The accounts' v2 records for ``params``, as the account route serves them, by day then account."""
    per_account = {account_id: account_records(client, account_id, params) for account_id in accounts}
    days = sorted({day_of(record) for records in per_account.values() for record in records})
    return [
        record for day in days for account_id in accounts for record in per_account[account_id] if day_of(record) == day
    ]


def org_records(client: httpx.Client, params: dict[str, str], organization_id: str = ORGANIZATION) -> list[Any]:
    response = client.get(organization_usage_path(organization_id), params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True and body["errors"] == []
    return list(body["result"])


@pytest.fixture
def anonymous(emu: Emulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=emu.base_url, timeout=10, verify=False) as http:
        yield http


def test_the_default_organization_holds_three_accounts(emu: Emulator) -> None:
    assert len(DEFAULT_ORGANIZATION_ID) == 32 and int(DEFAULT_ORGANIZATION_ID, 16) >= 0
    assert DEFAULT_ORGANIZATION_ACCOUNTS == (ACCOUNT, OTHER_ACCOUNT, THIRD_ACCOUNT)
    assert emu.organization_accounts(DEFAULT_ORGANIZATION_ID) == [ACCOUNT, OTHER_ACCOUNT, THIRD_ACCOUNT]
    assert emu.organization_accounts(UNKNOWN_ORGANIZATION) == []
    assert emu.settings()["organizations"] == {DEFAULT_ORGANIZATION_ID: [ACCOUNT, OTHER_ACCOUNT, THIRD_ACCOUNT]}
    with pytest.raises(ValueError, match="32 lowercase hex"):
        emu.organization_accounts("acme")
    assert {"organization-v2", "subscriptions", "billing-history"} <= set(ROUTES)


def test_organization_records_are_the_union_of_its_accounts_records(emu: Emulator, client: httpx.Client) -> None:
    served = org_records(client, WINDOW)
    assert served == union_by_day_then_account(client, list(DEFAULT_ORGANIZATION_ACCOUNTS), WINDOW)

    # Ordered by day, then by account in the organization's order; every record names its account.
    order = [ACCOUNT, OTHER_ACCOUNT, THIRD_ACCOUNT]
    keys = [(day_of(r), order.index(r["BillingAccountId"])) for r in served]
    assert keys == sorted(keys)
    assert sorted({day for day, _ in keys}) == ["2026-01-05", "2026-01-06", "2026-01-07"]  # 'to' exclusive
    names = {r["BillingAccountId"]: r["BillingAccountName"] for r in served}
    assert names == {account_id: emu.account_data(account_id).name for account_id in order}

    expected = [
        r
        for day in ("2026-01-05", "2026-01-06", "2026-01-07")
        for r in emu.expected_organization_records(ORGANIZATION, day)
    ]
    assert served == expected
    assert list(emu.iter_expected_organization_records(ORGANIZATION, "2026-01-05", "2026-01-08")) == expected


def test_organization_records_are_deterministic(client: httpx.Client) -> None:
    first = client.get(ORG_PATH, params=WINDOW)
    assert client.get(ORG_PATH, params=WINDOW).content == first.content
    with Emulator(clock=FROZEN, seed=7) as other, httpx.Client(base_url=other.base_url, headers=BEARER) as http:
        assert http.get(ORG_PATH, params=WINDOW).content != first.content


def test_restated_days_show_in_the_organization_route(emu: Emulator, client: httpx.Client) -> None:
    before = org_records(client, WINDOW)
    emu.restate(OTHER_ACCOUNT, "2026-01-06", factor=1.5, corrections=3)
    after = org_records(client, WINDOW)
    assert after != before
    assert after == union_by_day_then_account(client, list(DEFAULT_ORGANIZATION_ACCOUNTS), WINDOW)
    changed = {(r["BillingAccountId"], day_of(r)) for r in after if r not in before}
    assert changed == {(OTHER_ACCOUNT, "2026-01-06")}
    corrections = Counter((r["BillingAccountId"], day_of(r)) for r in after if r["ChargeClass"] == "Correction")
    baseline = Counter((r["BillingAccountId"], day_of(r)) for r in before if r["ChargeClass"] == "Correction")
    assert corrections[(OTHER_ACCOUNT, "2026-01-06")] == baseline[(OTHER_ACCOUNT, "2026-01-06")] + 3
    assert emu.expected_organization_records(ORGANIZATION, "2026-01-06") == [
        r for r in after if day_of(r) == "2026-01-06"
    ]


@pytest.mark.parametrize("to_inclusive", [False, True], ids=["to-exclusive", "to-inclusive"])
def test_range_rules_follow_the_to_switch(emu: Emulator, client: httpx.Client, to_inclusive: bool) -> None:
    emu.configure(to_inclusive=to_inclusive)
    served = org_records(client, WINDOW)
    covered = ["2026-01-05", "2026-01-06", "2026-01-07", "2026-01-08"]
    assert sorted({day_of(r) for r in served}) == (covered if to_inclusive else covered[:3])
    assert served == union_by_day_then_account(client, list(DEFAULT_ORGANIZATION_ACCOUNTS), WINDOW)

    # 31 days covered is the most: with 'to' inclusive, to - from = 30; exclusive, to - from = 31.
    longest = 30 if to_inclusive else 31
    start = date(2025, 12, 1)
    fits = {"from": start.isoformat(), "to": (start + timedelta(days=longest)).isoformat()}
    too_long = {"from": start.isoformat(), "to": (start + timedelta(days=longest + 1)).isoformat()}
    assert client.get(ORG_PATH, params=fits).status_code == 200
    refused = client.get(ORG_PATH, params=too_long)
    assert refused.status_code == 400
    assert refused.json()["errors"][0]["code"] == 1183
    assert "31 days" in refused.json()["errors"][0]["message"]


@pytest.mark.parametrize(
    "params",
    [
        {"from": "2026-01-05"},
        {"to": "2026-01-05"},
        {"from": "2026-01-05T00:00:00Z", "to": "2026-01-06"},
        {"from": "2026-01-07", "to": "2026-01-05"},
        {"from": "2026-02-30", "to": "2026-03-01"},
    ],
    ids=["from-alone", "to-alone", "timestamp", "backwards", "impossible-date"],
)
def test_bad_parameters_are_400_1183(client: httpx.Client, params: dict[str, str]) -> None:
    for organization_id in (ORGANIZATION, UNKNOWN_ORGANIZATION):
        response = client.get(organization_usage_path(organization_id), params=params)
        assert response.status_code == 400
        body = response.json()
        assert body["success"] is False and body["result"] is None and body["errors"][0]["code"] == 1183


def test_no_dates_means_this_month_through_today(client: httpx.Client) -> None:
    served = org_records(client, {})
    # Today (2026-01-10) is not published yet at 12:00 with the 6 h delay.
    assert sorted({day_of(r) for r in served}) == [f"2026-01-0{n}" for n in range(1, 10)]
    assert served == org_records(client, {"from": "2026-01-01", "to": "2026-01-10"})


def test_availability_delay_applies(emu: Emulator, client: httpx.Client) -> None:
    window = {"from": "2026-01-09", "to": "2026-01-11"}
    assert {day_of(r) for r in org_records(client, window)} == {"2026-01-09"}
    assert emu.expected_organization_records(ORGANIZATION, "2026-01-10") == []
    emu.set_clock(emu.available_at("2026-01-10"))
    assert {day_of(r) for r in org_records(client, window)} == {"2026-01-09", "2026-01-10"}
    assert emu.expected_organization_records(ORGANIZATION, "2026-01-10")


def test_unknown_or_empty_organization_is_an_empty_list(emu: Emulator, client: httpx.Client) -> None:
    assert org_records(client, WINDOW, UNKNOWN_ORGANIZATION) == []
    assert emu.expected_organization_records(UNKNOWN_ORGANIZATION, "2026-01-05") == []
    emu.configure(organizations={DEFAULT_ORGANIZATION_ID: []})
    assert org_records(client, WINDOW) == []


@pytest.mark.parametrize("organization_id", ["acme", "5EE5C0C7EA2D4C0E9D3A6F1B2C8E7A41", "a" * 31])
def test_malformed_organization_id_is_404_7003(client: httpx.Client, organization_id: str) -> None:
    response = client.get(organization_usage_path(organization_id), params=WINDOW)
    assert response.status_code == 404
    assert response.json()["errors"][0]["code"] == 7003


def test_metric_filters_are_ignored(client: httpx.Client) -> None:
    filtered = org_records(client, {**WINDOW, "metric": "d1_rows_read", "metric_id": "r2_class_a_operations"})
    assert filtered == org_records(client, WINDOW)


def test_organizations_from_the_constructor_configure_and_reset() -> None:
    organizations = {CUSTOM_ORGANIZATION: [THIRD_ACCOUNT, ACCOUNT]}
    with (
        Emulator(clock=FROZEN, organizations=organizations) as emu,
        httpx.Client(base_url=emu.base_url, headers=BEARER) as http,
    ):
        assert emu.organization_accounts(CUSTOM_ORGANIZATION) == [THIRD_ACCOUNT, ACCOUNT]
        assert emu.organization_accounts(DEFAULT_ORGANIZATION_ID) == list(DEFAULT_ORGANIZATION_ACCOUNTS)
        custom = org_records(http, WINDOW, CUSTOM_ORGANIZATION)
        assert custom == union_by_day_then_account(http, [THIRD_ACCOUNT, ACCOUNT], WINDOW)
        assert custom[0]["BillingAccountId"] == THIRD_ACCOUNT

        emu.configure(organizations={DEFAULT_ORGANIZATION_ID: [OTHER_ACCOUNT]})
        assert emu.organization_accounts(CUSTOM_ORGANIZATION) == []  # definitions are replaced
        assert {r["BillingAccountId"] for r in org_records(http, WINDOW)} == {OTHER_ACCOUNT}

        emu.reset()
        assert emu.organization_accounts(CUSTOM_ORGANIZATION) == [THIRD_ACCOUNT, ACCOUNT]
        assert emu.organization_accounts(DEFAULT_ORGANIZATION_ID) == list(DEFAULT_ORGANIZATION_ACCOUNTS)


@pytest.mark.parametrize(
    ("organizations", "message"),
    [
        ({"acme": [ACCOUNT]}, "organization_id must be 32 lowercase hex"),
        ({CUSTOM_ORGANIZATION: ["nope"]}, "account_id must be 32 lowercase hex"),
        ({CUSTOM_ORGANIZATION: ACCOUNT}, "must be a list of account ids"),
        ({CUSTOM_ORGANIZATION: [ACCOUNT, ACCOUNT]}, "twice"),
        ([ACCOUNT], "must map an organization id"),
    ],
)
def test_bad_organizations_are_refused_and_change_nothing(emu: Emulator, organizations: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Emulator(organizations=organizations)
    with pytest.raises(ValueError, match=message):
        emu.configure(organizations=organizations, history_items=3)
    assert emu.history_items == 25 and emu.organization_accounts(DEFAULT_ORGANIZATION_ID) == list(
        DEFAULT_ORGANIZATION_ACCOUNTS
    )


def test_organizations_through_the_control_api(emu: Emulator, client: httpx.Client) -> None:
    with httpx.Client(base_url=emu.control_url, timeout=10) as control:
        answer = control.post("/config", json={"organizations": {CUSTOM_ORGANIZATION: [OTHER_ACCOUNT]}})
        assert answer.status_code == 200
        assert answer.json()["organizations"] == {
            DEFAULT_ORGANIZATION_ID: list(DEFAULT_ORGANIZATION_ACCOUNTS),
            CUSTOM_ORGANIZATION: [OTHER_ACCOUNT],
        }
        served = org_records(client, WINDOW, CUSTOM_ORGANIZATION)
        assert served and {r["BillingAccountId"] for r in served} == {OTHER_ACCOUNT}
        expected = control.get("/expected", params={"organization_id": CUSTOM_ORGANIZATION, "day": "2026-01-05"})
        assert expected.json() == [r for r in served if day_of(r) == "2026-01-05"]
        bad = control.post("/config", json={"organizations": {CUSTOM_ORGANIZATION: ["nope"]}})
        assert bad.status_code == 400 and "32 lowercase hex" in bad.json()["error"]


def test_organizations_from_the_command_line() -> None:
    args = build_parser().parse_args(
        ["--organization", f"{CUSTOM_ORGANIZATION}:{ACCOUNT},{OTHER_ACCOUNT}", "--organization", f"{ORGANIZATION}:"]
    )
    emu = build_emulator(args)
    assert emu.organization_accounts(CUSTOM_ORGANIZATION) == [ACCOUNT, OTHER_ACCOUNT]
    assert emu.organization_accounts(ORGANIZATION) == []
    for spec in ("nocolon", f"acme:{ACCOUNT}", f"{CUSTOM_ORGANIZATION}:nope"):
        with pytest.raises(ValueError):
            build_emulator(build_parser().parse_args(["--organization", spec]))
    twice = ["--organization", f"{CUSTOM_ORGANIZATION}:{ACCOUNT}", "--organization", f"{CUSTOM_ORGANIZATION}:"]
    with pytest.raises(ValueError, match="twice"):
        build_emulator(build_parser().parse_args(twice))


def test_auth_needs_billing_read_and_a_user_scope(anonymous: httpx.Client) -> None:
    refused = anonymous.get(ORG_PATH, params=WINDOW, headers={"Authorization": f"Bearer {NO_BILLING_TOKEN}"})
    assert refused.status_code == 403
    assert refused.json()["errors"][0] == {"code": 10000, "message": "Authentication error"}
    # An account-owned token reaches its own account only, never an organization.
    account_token = {"Authorization": f"Bearer {DEFAULT_ACCOUNT_TOKEN}"}
    refused = anonymous.get(ORG_PATH, params=WINDOW, headers=account_token)
    assert (refused.status_code, refused.json()["errors"][0]["code"]) == (403, 9109)
    global_key = {"X-Auth-Email": DEFAULT_EMAIL, "X-Auth-Key": DEFAULT_GLOBAL_KEY}
    assert anonymous.get(ORG_PATH, params=WINDOW, headers=global_key).status_code == 200
    assert anonymous.get(ORG_PATH, params=WINDOW).status_code == 400  # no credentials


def test_faults_request_log_and_route_counts(emu: Emulator, client: httpx.Client) -> None:
    emu.add_fault_spec("organization-v2:nth=2:status=503")
    emu.add_fault(route="usage", kind="status", status=502, nth=4)  # the usage group counts the org route
    statuses = [client.get(ORG_PATH, params=WINDOW).status_code for _ in range(4)]
    assert statuses == [200, 503, 200, 502]
    assert client.get(usage_path("v2"), params=WINDOW).status_code == 200
    assert emu.route_counts() == {"organization-v2": 4, "v2": 1}
    log = emu.request_log
    assert [(e["route"], e["status"], e["fault"]) for e in log] == [
        ("organization-v2", 200, None),
        ("organization-v2", 503, "status"),
        ("organization-v2", 200, None),
        ("organization-v2", 502, "status"),
        ("v2", 200, None),
    ]
    assert log[0]["path"] == f"/client/v4{ORG_PATH}" and log[0]["query"] == {k: [v] for k, v in WINDOW.items()}


def test_shuffled_responses_hold_the_same_records(emu: Emulator, client: httpx.Client) -> None:
    canonical = org_records(client, WINDOW)
    emu.configure(shuffle_records=True)
    shuffled = org_records(client, WINDOW)
    assert shuffled != canonical
    assert sorted(map(repr, shuffled)) == sorted(map(repr, canonical))
