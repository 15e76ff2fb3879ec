"""The row key of a usage row: which fields identify it, per source, and how records that share an
identity are told apart (see ``docs/sql.md``, "The row key").

Pure Python and per record; the only state kept across records is one 16-byte digest per
distinct identity, never a record.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

from airflow_provider_cfbilling import records as record_tools

KEY_VERSION = 1
"""Part of every row key: a change of the key's definition changes every key (and is a new version)."""

IDENTITY_FIELDS: dict[str, tuple[str, ...]] = {
    # One FOCUS row per charge period, charge category and class, billable metric, sub-account,
    # zone, region and tag set.
    "v2": (
        "ChargePeriodStart",
        "ChargePeriodEnd",
        "ChargeCategory",
        "ChargeClass",
        "x_BillableMetricId",
        "SubAccountId",
        "x_ZoneId",
        "RegionId",
        "Tags",
    ),
    # One PayGo row per day, service and unit (a service such as Workers Standard reports requests
    # and CPU time), subscription and zone; the beta path has neither and sums them.
    "paygo": (
        "ChargePeriodStart",
        "ChargePeriodEnd",
        "ServiceName",
        "ConsumedUnit",
        "SubscriptionId",
        "ZoneId",
        "ChargeClass",
    ),
}
"""The fields that identify a usage row, per source (API spelling); absent fields count as null."""

CORRECTION_FIELDS: tuple[str, ...] = (
    "ChargeDescription",
    "ConsumedQuantity",
    "PricingQuantity",
    "BilledCost",
    "EffectiveCost",
    "ListCost",
    "ContractedCost",
)
"""What also identifies a correction row (``ChargeClass`` "Correction"): a correction is an event,
identified by what it corrects *and by how much*, so several corrections of one series on one day
are several rows, and a restatement that adds one leaves the earlier ones' keys alone."""

CORRECTION = "Correction"
_TIMESTAMP_FIELDS = frozenset({"ChargePeriodStart", "ChargePeriodEnd"})
# One encoder for every call (json.dumps with options builds a new one each time).
canonical_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, sort_keys=True, default=str).encode


class RowKeys:
    """Gives each record of one window its row key, as the records stream.

    ``row_key`` = the first 32 hexadecimal characters of SHA-256 over the compact JSON (sorted
    keys) of ``[KEY_VERSION, source, account_id, *identity]``, where ``identity`` is the values of
    :data:`IDENTITY_FIELDS` (timestamps as ``YYYY-MM-DDTHH:MM:SSZ``), plus :data:`CORRECTION_FIELDS`
    for correction rows.

    Records that share all of those (a correction reported twice, or rows Cloudflare would split in
    a way the identity cannot tell apart) cannot be keyed by their identity alone, and not by their
    order either (the API's order is not stable). They get provisional keys while they stream;
    :func:`settled_keys` gives them their final ones, from their stored content, before the
    transaction commits. Memory: one 16-byte digest per distinct identity, never a record.
    """

    def __init__(self, source: str, account_id: str) -> None:
        self.source = source
        self._prefix: list[Any] = [KEY_VERSION, source, account_id]
        self._fields = IDENTITY_FIELDS[source]
        self._seen: set[bytes] = set()
        self._timestamps: dict[Any, Any] = {}
        self.shared: dict[bytes, list[str]] = {}
        """Identity digests shared by several records -> the keys those records were inserted with."""

    def _timestamp(self, value: Any) -> Any:
        canonical = self._timestamps.get(value)
        if canonical is None and value is not None:
            try:
                canonical = record_tools.parse_timestamp(value).isoformat().replace("+00:00", "Z")
            except (TypeError, ValueError):
                return value  # not for the key to judge: the column's converter reports it
            if isinstance(value, str) and len(self._timestamps) < 4096:
                self._timestamps[value] = canonical
        return canonical

    def identity(self, record: dict[str, Any]) -> list[Any]:
        get = record.get
        values = [self._timestamp(get(name)) if name in _TIMESTAMP_FIELDS else get(name) for name in self._fields]
        if get("ChargeClass") == CORRECTION:
            values += [get(name) for name in CORRECTION_FIELDS]
        return self._prefix + values

    def key(self, record: dict[str, Any]) -> str:
        digest = hashlib.sha256(canonical_json(self.identity(record)).encode("utf-8")).digest()[:16]
        if digest not in self._seen:
            self._seen.add(digest)
            return digest.hex()
        keys = self.shared.setdefault(digest, [digest.hex()])
        provisional = _member_key(digest, b"provisional", len(keys))
        keys.append(provisional)
        return provisional


def _member_key(identity: bytes, content: bytes, number: int) -> str:
    return hashlib.sha256(identity + content + str(number).encode("ascii")).hexdigest()[:32]


def _stored(value: Any) -> Any:
    """A stored value in one spelling whatever the driver returns (timestamps in UTC, JSON parsed)."""
    if isinstance(value, dt.datetime):
        return (
            (value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)).astimezone(dt.timezone.utc).isoformat()
        )
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def settled_keys(identity: bytes, rows: dict[str, tuple[Any, ...]]) -> dict[str, str]:
    """Final keys of records that share ``identity``: current key -> final key.

    ``rows`` maps each one's current key to its stored values (without the key). Each is keyed
    ``sha256(identity digest + content digest + n)``: the content digest tells different rows
    apart, and ``n`` numbers rows whose stored values are all equal (interchangeable), so the
    keys do not depend on the order the API sent them in.
    """
    contents = {
        key: hashlib.sha256(canonical_json([_stored(value) for value in values]).encode("utf-8")).digest()
        for key, values in rows.items()
    }
    numbers: dict[bytes, int] = {}
    final = {}
    for key in sorted(rows, key=lambda current: contents[current]):
        content = contents[key]
        final[key] = _member_key(identity, content, numbers.get(content, 0))
        numbers[content] = numbers.get(content, 0) + 1
    return final


__all__ = ["CORRECTION_FIELDS", "IDENTITY_FIELDS", "KEY_VERSION", "RowKeys", "canonical_json", "settled_keys"]
