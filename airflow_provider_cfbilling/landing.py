"""Landing records in object storage: one object, or one object per UTC day, each with its manifest.

The operators decide *what* to fetch; this module decides what to write. A day whose content is
unchanged since its manifest was written is left alone (object and manifest byte for byte); a new
or changed day is written atomically, then its manifest. See :mod:`.manifests`.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from airflow_provider_cfbilling import __version__, manifests
from airflow_provider_cfbilling import records as record_tools
from airflow_provider_cfbilling.partitions import DaySpool, DestinationTemplate, counting, days_of
from airflow_provider_cfbilling.sinks import (
    OutputSpec,
    WriteResult,
    _EncodedLines,
    check_filesystem,
    object_sha256,
    read_bytes,
    resolve_output,
    write_bytes,
    write_records,
)
from airflow_provider_cfbilling.windows import Window

log = logging.getLogger(__name__)

NEW, CHANGED, UNCHANGED = "new", "changed", "unchanged"


def output_spec(uri: str, file_format: str | None, conn_id: str | None) -> OutputSpec:
    """The validated output for one object (format, compression, a filesystem for its scheme)."""
    spec = resolve_output(uri, file_format)
    check_filesystem(spec.uri, conn_id)
    return spec


def styled(records: Iterable[dict[str, Any]], key_style: str) -> Iterator[dict[str, Any]]:
    if key_style == "api":
        yield from records
        return
    for record in records:
        yield record_tools.apply_key_style(record, key_style)


@dataclass(frozen=True)
class Landing:
    """Where and how one task's records land.

    :param source: the record source (``records.SCHEMAS`` key), for the documented columns.
    :param focus_version: the FOCUS version of v2 records (``None`` for other sources).
    :param complete_after_days: a day is complete once it ended this many days ago (UTC).
    """

    endpoint: str
    owner: Mapping[str, str]  # {"account_id": ...} or {"organization_id": ...}
    source: str
    key_style: str
    file_format: str | None
    conn_id: str | None
    focus_version: str | None = None
    complete_after_days: int = 7

    def spec(self, uri: str) -> OutputSpec:
        return output_spec(uri, self.file_format, self.conn_id)

    def write_object(
        self, records: Iterable[dict[str, Any]], spec: OutputSpec, window: Window | None
    ) -> dict[str, Any]:
        """Write one object (a window, or a snapshot when ``window`` is None), then its manifest;
        what was written (for the summary). Complete when the window's last day is."""
        digest = manifests.ContentDigest()
        result = self._write(counting(records, digest), spec)
        previous = self._previous_manifest(spec)
        changed = previous is None or previous.get("sha256") != result.sha256
        period = (None, None) if window is None else window.as_strings()
        complete = window is not None and manifests.is_complete(window.last_day, self.complete_after_days)
        self._write_manifest(spec, result, digest, period, previous, changed=changed, complete=complete)
        return _written(result)

    def write_days(self, spool: DaySpool, template: DestinationTemplate, window: Window) -> list[dict[str, Any]]:
        """One object per UTC day of ``window`` (an empty one for a day without usage), each
        compared with its manifest first; the partitions, with their ``status``."""
        partitions = []
        for day in days_of(window):
            spec = self.spec(template.render(self.owner, window, day))
            digest = spool.digests.get(day) or manifests.ContentDigest()
            period = (day.isoformat(), (day + dt.timedelta(days=1)).isoformat())
            complete = manifests.is_complete(day, self.complete_after_days)
            previous = self._previous_manifest(spec)
            if previous is not None and self._holds(spec, previous, digest):
                if complete and not previous.get("complete"):
                    # The day has settled: only its manifest says so; the object is untouched.
                    write_bytes(manifests.manifest_uri(spec.uri), _mark_complete(previous), self.conn_id)
                part = {key: previous[key] for key in ("records", "bytes", "sha256")}
                partitions.append({"charge_date": day.isoformat(), "uri": spec.uri, **part, "status": UNCHANGED})
                continue
            if spec.file_format == "jsonl" and self.key_style == "api":
                # The spool's lines are the bytes this write would encode: written as they are.
                result = self._write(_EncodedLines(spool.encoded(day)), spec)
            else:
                result = self._write(spool.records(day), spec)
            self._write_manifest(spec, result, digest, period, previous, changed=True, complete=complete)
            status = NEW if previous is None else CHANGED
            partitions.append({"charge_date": day.isoformat(), **_written(result), "status": status})
            log.info("%s %s: %d records (%s)", status.capitalize(), day, result.records, spec.uri)
        return partitions

    # -- internals ---------------------------------------------------------------------------

    def _settings(self, spec: OutputSpec) -> dict[str, Any]:
        """What shapes an object besides its records: a change of any of these rewrites it."""
        return {
            "format": spec.file_format,
            "compression": spec.compression,
            "key_style": self.key_style,
            "source": self.source,
            "generator_version": __version__,
        }

    def _write(self, records: Iterable[dict[str, Any]], spec: OutputSpec) -> WriteResult:
        return write_records(
            records if isinstance(records, _EncodedLines) else styled(records, self.key_style),
            spec,
            columns=record_tools.columns_for(self.source, self.key_style),
            conn_id=self.conn_id,
        )

    def _previous_manifest(self, spec: OutputSpec) -> dict[str, Any] | None:
        return manifests.decode_manifest(read_bytes(manifests.manifest_uri(spec.uri), self.conn_id))

    def _holds(self, spec: OutputSpec, previous: dict[str, Any], digest: manifests.ContentDigest) -> bool:
        """The object already holds this content: same digest, and the object is the one the
        manifest describes (a crash between object and manifest fails this check)."""
        if previous.get("content_sha256") != digest.hexdigest(self._settings(spec)):
            return False
        return bool(previous.get("sha256")) and object_sha256(spec.uri, self.conn_id) == previous["sha256"]

    def _columns(self, digest: manifests.ContentDigest) -> list[dict[str, str]]:
        documented = record_tools.columns_for(self.source, self.key_style)
        names = {column.name for column in documented}
        convert = record_tools.snake_key if self.key_style == "snake" else str
        extra = sorted({convert(key) for key in digest.keys})
        return [{"name": c.name, "type": c.type} for c in documented] + [
            {"name": name, "type": "string"} for name in extra if name not in names
        ]

    def _write_manifest(
        self,
        spec: OutputSpec,
        result: WriteResult,
        digest: manifests.ContentDigest,
        period: tuple[str | None, str | None],
        previous: dict[str, Any] | None,
        *,
        changed: bool,
        complete: bool,
    ) -> None:
        now = manifests.utc_now()
        first_written_at = (previous or {}).get("first_written_at") or now
        changed_at = now if changed or not previous else previous.get("changed_at") or now
        manifest = manifests.build_manifest(
            endpoint=self.endpoint,
            owner=self.owner,
            period=period,
            file_format=result.file_format,
            records=result.records,
            size=result.bytes,
            sha256=result.sha256,
            columns=self._columns(digest),
            corrections=digest.corrections,
            content_sha256=digest.hexdigest(self._settings(spec)),
            first_written_at=first_written_at,
            changed_at=changed_at,
            complete=complete,
            focus_version=self.focus_version,
        )
        write_bytes(manifests.manifest_uri(spec.uri), manifests.encode_manifest(manifest), self.conn_id)


def _written(result: WriteResult) -> dict[str, Any]:
    return {
        "uri": result.uri,
        "format": result.file_format,
        "records": result.records,
        "bytes": result.bytes,
        "sha256": result.sha256,
    }


def _mark_complete(previous: dict[str, Any]) -> bytes:
    return manifests.encode_manifest({**previous, "complete": True})


__all__ = ["CHANGED", "NEW", "UNCHANGED", "Landing", "output_spec", "styled"]
