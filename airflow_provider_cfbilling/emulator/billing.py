"""An account's subscriptions and billing history: deterministic snapshots tied to its usage data.

Like ``data.py``, everything here is a pure function of the account's synthetic facts
(:class:`~airflow_provider_cfbilling.emulator.data.AccountData`: seed, account id, zones), the instant
``now`` (the emulator clock) and, for the history, how many items it holds. What ties them to the usage:

* Subscriptions (``GET /accounts/{id}/subscriptions``): the PayGo subscription the usage routes already
  know (``id`` = ``/billable-usage/info``'s ``subscriptions[].id`` = the PayGo records'
  ``SubscriptionId``), a "Workers Paid" plan at 5 USD a month whose ``component_values`` are the usage
  catalog's metrics; then a ``pro`` plan (20 USD a month) on the account's first zone and a
  ``business`` plan (200 USD a month) on its second, when it has them (the zones of the usage records'
  ``x_ZoneId`` / ``x_ZoneName``). Every ``current_period_start`` / ``current_period_end`` is the billing
  period that contains today (the usage records' ``BillingPeriodStart`` / ``BillingPeriodEnd``).
* Billing history (``GET /accounts/{id}/billing/history``), newest first: one ``charge`` per billing
  period that has ended, issued on the period's end day (a few hours after midnight UTC), for the
  subscriptions' fixed fees plus a deterministic usage part (0 to 60 USD; *not* the sum of the usage
  records' costs); it is ``unpaid`` for 14 days, ``paid`` after. About one period in five also has a
  ``refund`` (a negative amount, status ``refunded``) 15 to 25 days after its charge, before the next one.
  Items appear once their ``occurred_at`` has passed on the emulator clock; the history holds the
  ``items`` most recent of them (it does not stop at the subscription's start).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from airflow_provider_cfbilling.emulator.catalog import CATALOG
from airflow_provider_cfbilling.emulator.data import AccountData
from airflow_provider_cfbilling.emulator.days import sub_month, timestamp

CURRENCY = "USD"
#: The most items a history may hold (a bound on how far back it is generated).
MAX_HISTORY_ITEMS = 1000
#: A charge is ``unpaid`` this long after it is issued, ``paid`` after.
UNPAID_DAYS = 14
#: The share of billing periods with a refund.
REFUND_RATE = 0.2
#: Where hosted invoice links point: a reserved top-level domain, so nothing ever resolves.
HOSTED_INVOICE_BASE = "https://invoice.emulator.invalid/i/"


@dataclass(frozen=True)
class Plan:
    """One fixed-fee subscription: its rate plan, monthly price and the zone it applies to, if any."""

    key: str
    rate_plan_id: str
    public_name: str
    scope: str
    price: float
    sets: tuple[str, ...]
    zone_index: int | None = None
    page_rules: int | None = None


_PAYGO_PLAN = Plan("paygo", "workers_paid", "Workers Paid", "account", 5.0, ("paygo", "workers"))
_ZONE_PLANS = (
    Plan("zone-0", "pro", "Pro Plan", "zone", 20.0, ("zone_plan",), zone_index=0, page_rules=20),
    Plan("zone-1", "business", "Business Plan", "zone", 200.0, ("zone_plan",), zone_index=1, page_rules=50),
)


def plans(data: AccountData) -> list[Plan]:
    """The account's subscriptions: PayGo first, then one per zone plan (zones permitting)."""
    zone_count = data.settings.zone_count
    return [
        _PAYGO_PLAN,
        *(plan for plan in _ZONE_PLANS if plan.zone_index is not None and plan.zone_index < zone_count),
    ]


def monthly_fees(data: AccountData) -> float:
    """What the account's subscriptions cost per billing period (USD)."""
    return round(sum(plan.price for plan in plans(data)), 2)


def _subscription(data: AccountData, plan: Plan, period: tuple[date, date]) -> dict[str, Any]:
    subscription_id = data.subscription_id if plan.key == "paygo" else data.digest("subscription", plan.key).hex()
    subscription: dict[str, Any] = {
        "id": subscription_id,
        "currency": CURRENCY,
        "current_period_start": timestamp(period[0]),
        "current_period_end": timestamp(period[1]),
        "frequency": "monthly",
        "price": plan.price,
        "state": "Paid",
        "rate_plan": {
            "id": plan.rate_plan_id,
            "public_name": plan.public_name,
            "currency": CURRENCY,
            "scope": plan.scope,
            "externally_managed": False,
            "is_contract": False,
            "sets": list(plan.sets),
        },
    }
    if plan.key == "paygo":
        # Usage components: the catalog the usage records' x_BillableMetricId values come from.
        subscription["component_values"] = [
            {
                "name": metric.id,
                "display_name": metric.name,
                "kind": "usage",
                "default": 0.0,
                "price": metric.unit_price,
            }
            for metric in CATALOG
        ]
    else:
        subscription["component_values"] = [
            {
                "name": "page_rules",
                "display_name": "Page Rules",
                "kind": "sum",
                "default": float(plan.page_rules or 0),
                "value": float(plan.page_rules or 0),
                "price": 0.0,
            }
        ]
    if plan.zone_index is not None:
        zone_id, zone_name = data.zone(plan.zone_index)
        subscription["zone"] = {"id": zone_id, "name": zone_name}
    return subscription


def subscriptions(data: AccountData, now: datetime) -> list[dict[str, Any]]:
    """The account's subscriptions at ``now`` (the current billing period is the one containing today)."""
    period = data.billing_period(now.date())
    return [_subscription(data, plan, period) for plan in plans(data)]


# -- billing history -------------------------------------------------------------------------------


def _instant(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _token(data: AccountData, *parts: object) -> str:
    """A random-looking, URL-safe, 43-character token (deterministic in ``parts``)."""
    raw = data.digest("token-a", *parts) + data.digest("token-b", *parts)
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _code(data: AccountData, *parts: object) -> str:
    return base64.b32encode(data.digest(*parts)).decode()[:16]


def _period_items(
    data: AccountData, start: date, end: date, fees: float, plan_names: str, now: datetime
) -> list[dict[str, Any]]:
    """The history items of the billing period ``[start, end)`` visible at ``now``, newest first."""
    u_time, u_usage = data.units("history-charge", start.isoformat())
    u_refund, u_refund_size = data.units("history-refund", start.isoformat())
    issued = datetime.combine(end, time(), tzinfo=timezone.utc) + timedelta(seconds=3600 + int(u_time * 4 * 3600))
    amount = round(fees + round(u_usage * 60, 2), 2)
    unpaid = now < issued + timedelta(days=UNPAID_DAYS)
    invoice_id = f"IN-{start:%Y%m}-{_code(data, 'invoice', start)[:8]}"
    span = f"{start.isoformat()} to {end.isoformat()}"
    charge: dict[str, Any] = {
        "id": data.digest("history", "charge", start).hex(),
        "type": "charge",
        "action": "subscription",
        "description": f"Invoice for the billing period {span}: {plan_names} and usage",
        "occurred_at": _instant(issued),
        "amount": amount,
        "amount_to_pay": amount if unpaid else 0.0,
        "currency": CURRENCY,
        "status": "unpaid" if unpaid else "paid",
        "invoice_id": invoice_id,
        "receipt_id": None if unpaid else f"RCPT-{_code(data, 'receipt', start)[:10]}",
        "external_invoice_id": f"in_{_code(data, 'external-invoice', start).lower()}",
        "source": "emulated-gateway",
        "source_invoice_id": f"src_{_code(data, 'source-invoice', start).lower()}",
        "hosted_invoice_url": HOSTED_INVOICE_BASE + _token(data, "hosted-invoice", start),
    }
    items = [charge] if issued <= now else []
    if u_refund < REFUND_RATE:
        refunded = issued + timedelta(days=15 + int(u_refund_size * 10), seconds=int(u_time * 1800))
        if refunded <= now:
            refund = round(amount * (0.05 + 0.15 * u_refund_size), 2)
            items.insert(
                0,
                {
                    "id": data.digest("history", "refund", start).hex(),
                    "type": "refund",
                    "action": "refund",
                    "description": f"Refund on the invoice for the billing period {span}",
                    "occurred_at": _instant(refunded),
                    "amount": -refund,
                    "amount_to_pay": 0.0,
                    "currency": CURRENCY,
                    "status": "refunded",
                    "invoice_id": invoice_id,
                    "receipt_id": f"RFND-{_code(data, 'refund-receipt', start)[:10]}",
                    "external_invoice_id": charge["external_invoice_id"],
                    "source": "emulated-gateway",
                    "source_invoice_id": charge["source_invoice_id"],
                    "hosted_invoice_url": HOSTED_INVOICE_BASE + _token(data, "hosted-credit-note", start),
                },
            )
    return items


def billing_history(data: AccountData, now: datetime, items: int, status: str | None = None) -> list[dict[str, Any]]:
    """The ``items`` most recent history items of the account at ``now``, newest first; with ``status``,
    only those of that status (among those ``items``)."""
    count = max(0, min(int(items), MAX_HISTORY_ITEMS))
    fees = monthly_fees(data)
    plan_names = ", ".join(
        plan.public_name + (f" ({data.zone(plan.zone_index)[1]})" if plan.zone_index is not None else "")
        for plan in plans(data)
    )
    found: list[dict[str, Any]] = []
    end = data.billing_period(now.date())[0]  # the current period has no charge yet
    while len(found) < count:
        start = sub_month(end)
        found.extend(_period_items(data, start, end, fees, plan_names, now))
        end = start
    history = found[:count]
    if status is not None:
        history = [item for item in history if item["status"] == status]
    return history
