"""Manifests: what each object the operators write holds, and whether a day's content changed.

Every object ``.../name.ext`` gets ``.../_name.ext.manifest.json`` (the leading underscore keeps
Spark, Hive and ``pyarrow.dataset`` from reading it as data), written atomically *after* the
object. A crash between the two leaves a manifest whose ``sha256`` does not match the object, so
the next run rewrites the day: the pair heals itself.

Change detection compares the *content* of a day, not the object's bytes: an order-independent
digest of the records (the sum of per-record hashes, so the API may send them in any order)
together with the settings that shape the object (format, compression, key style). A day whose
digest matches its manifest, and whose object still has the manifest's ``sha256``, is left alone,
object and manifest byte for byte.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_cfbilling import __version__

GENERATOR = "airflow-provider-cfbilling"
CORRECTION = "Correction"
_MODULUS = 1 << 256
_sha256 = hashlib.sha256


def manifest_uri(object_uri: str) -> str:
    """``.../name.ext`` -> ``.../_name.ext.manifest.json``."""
    parent, _, name = object_uri.rpartition("/")
    return f"{parent}/_{name}.manifest.json"


@dataclass
class ContentDigest:
    """An order-independent digest of a sequence of records (a multiset hash)."""

    records: int = 0
    corrections: int = 0
    keys: set[str] = field(default_factory=set)
    hashed: bool = True  # False: only counted (an object that is always written needs no digest)
    _sum: int = 0

    def add(self, encoded: bytes | None, record: dict[str, Any]) -> None:
        """Count one record; ``encoded`` is its canonical bytes (compact JSON, keys as sent), or
        None when the records are only counted."""
        if encoded is None:
            self.hashed = False
        else:
            self._sum = (self._sum + int.from_bytes(hashlib.sha256(encoded).digest(), "big")) % _MODULUS
        self.records += 1
        if record.get("ChargeClass") == CORRECTION:
            self.corrections += 1
        self.keys.update(record)

    def count(self, record: dict[str, Any]) -> None:
        """Count one record without hashing it (``add(None, record)``)."""
        self.hashed = False
        self.records += 1
        if record.get("ChargeClass") == CORRECTION:
            self.corrections += 1
        self.keys.update(record)

    def add_encoded(self, lines: list[bytes], records: list[dict[str, Any]]) -> None:
        """``add(line, record)`` for each pair: the same digest, in one pass."""
        total = self._sum
        for line in lines:
            total += int.from_bytes(_sha256(line).digest(), "big")
        self._sum = total % _MODULUS
        self.records += len(records)
        self.corrections += sum(1 for record in records if record.get("ChargeClass") == CORRECTION)
        update = self.keys.update
        for record in records:
            update(record)

    def hexdigest(self, settings: dict[str, Any]) -> str | None:
        """The digest of the records and the ``settings`` that shape their object (None when
        the records were only counted)."""
        if not self.hashed:
            return None
        payload = {"records": self.records, "sum": f"{self._sum:064x}", "settings": settings}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def is_complete(charge_date: dt.date, complete_after_days: int, today: dt.date | None = None) -> bool:
    """The completeness rule: a day is complete once it ended at least ``complete_after_days``
    full days ago (UTC), the time Cloudflare is given to settle it.

    In the spirit of FOCUS 1.3's recency metadata (``TimeSectorComplete``): Cloudflare publishes
    a day partial and may restate it (``Correction`` rows) while it is recent. With a look-back
    longer than ``complete_after_days``, a day is re-checked after it is marked complete, so a
    late restatement is still caught (and marked in ``changed_at``).
    """
    today = today or dt.datetime.now(dt.timezone.utc).date()
    return (today - charge_date).days - 1 >= complete_after_days


def build_manifest(
    *,
    endpoint: str,
    owner: Mapping[str, str],
    period: tuple[str | None, str | None],
    file_format: str,
    records: int,
    size: int,
    sha256: str,
    columns: list[dict[str, str]],
    corrections: int,
    content_sha256: str | None,
    first_written_at: str,
    changed_at: str,
    complete: bool,
    focus_version: str | None,
) -> dict[str, Any]:
    manifest: dict[str, Any] = {
        "generator": GENERATOR,
        "generator_version": __version__,
        "endpoint": endpoint,
        "account_id": owner.get("account_id"),
        "period_start": period[0],
        "period_end": period[1],
        "format": file_format,
        "records": records,
        "bytes": size,
        "sha256": sha256,
        "columns": columns,
        "corrections": corrections,
        "content_sha256": content_sha256,
        "first_written_at": first_written_at,
        "changed_at": changed_at,
        "complete": complete,
    }
    if "organization_id" in owner:
        manifest["organization_id"] = owner["organization_id"]
    if focus_version is not None:
        manifest["focus_version"] = focus_version
    return manifest


def encode_manifest(manifest: dict[str, Any]) -> bytes:
    return (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()


def decode_manifest(data: bytes | None) -> dict[str, Any] | None:
    """A manifest read back; ``None`` when absent or unreadable (the day is then rewritten)."""
    if not data:
        return None
    try:
        manifest = json.loads(data)
    except ValueError:
        return None
    return manifest if isinstance(manifest, dict) else None


__all__ = [
    "GENERATOR",
    "ContentDigest",
    "build_manifest",
    "decode_manifest",
    "encode_manifest",
    "is_complete",
    "manifest_uri",
    "utc_now",
]
