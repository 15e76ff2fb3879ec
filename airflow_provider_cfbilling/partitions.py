"""Destination placeholders and day partitions.

A destination may name what it holds: ``{account_id}`` (or ``{organization_id}`` for an
organization's usage), ``{period_start}`` and ``{period_end}`` (exclusive) are filled from the
window actually fetched, after Jinja, and ``{charge_date}`` makes one object per UTC day of the
window. Placeholders are single braces, so
they never collide with Jinja's double ones, and are filled by the operator, which knows the
window; Jinja only knows the data interval, whose days are not the window's in every timezone.
"""

from __future__ import annotations

import datetime as dt
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Any

from airflow_provider_cfbilling.exceptions import CloudflareInputError
from airflow_provider_cfbilling.manifests import ContentDigest
from airflow_provider_cfbilling.windows import Window

PLACEHOLDERS = ("account_id", "organization_id", "period_start", "period_end", "charge_date")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_SPOOL_BATCH = 1000


@dataclass(frozen=True)
class DestinationTemplate:
    """A rendered ``destination`` whose placeholders are still to fill."""

    text: str

    @property
    def per_day(self) -> bool:
        """One object per UTC day (``{charge_date}`` is in the destination)."""
        return "{charge_date}" in self.text

    def render(self, owner: Mapping[str, str], window: Window, charge_date: dt.date | None = None) -> str:
        """The destination for ``window`` (and, with ``{charge_date}``, for one of its days);
        ``owner`` names whose data it is (``{"account_id": ...}`` or ``{"organization_id": ...}``).
        A placeholder without a value is left as it is (see :meth:`unfilled`)."""
        start, end = window.as_strings()
        values = {**owner, "period_start": start, "period_end": end}
        if charge_date is not None:
            values["charge_date"] = charge_date.isoformat()
        return _PLACEHOLDER.sub(lambda match: values.get(match[1], match[0]), self.text)

    @staticmethod
    def unfilled(rendered: str) -> list[str]:
        """The placeholders a rendered destination still holds."""
        return [match[0] for match in _PLACEHOLDER.finditer(rendered) if match[1] in PLACEHOLDERS]


def parse_destination(destination: str) -> DestinationTemplate:
    """Check the placeholders of a rendered destination (before any request)."""
    for match in _PLACEHOLDER.finditer(destination):
        if match[1] not in PLACEHOLDERS:
            known = ", ".join("{" + name + "}" for name in PLACEHOLDERS)
            raise CloudflareInputError(
                "destination",
                f"{match[0]!r} is not a placeholder this operator fills",
                f"Use {known} (filled from the window fetched), or Jinja ('{{{{ ds }}}}') for other values",
            )
    return DestinationTemplate(destination)


def counting(records: Iterable[dict[str, Any]], digest: ContentDigest) -> Iterator[dict[str, Any]]:
    """``records`` unchanged, each also counted into ``digest`` (records, corrections, keys; not
    hashed: an object written whatever it holds needs no content digest)."""
    count = digest.count
    for record in records:
        count(record)
        yield record


class DaySpool:
    """Records grouped by UTC day, spooled to one local temporary file so memory stays flat,
    with each day's :class:`~.manifests.ContentDigest` (``digests``).

    Records arrive in whatever order the API sends them; each day's records are read back in
    that same order. Each record is encoded once, as the compact JSON line that is both its
    content digest's input and, for JSON Lines with the API's keys, the bytes written
    (:meth:`encoded`); :meth:`records` decodes the lines back (the records are JSON values, so
    they come back equal, key order included). The file is unlinked at creation and lives in
    ``TMPDIR``.
    """

    def __init__(self, records: Iterable[dict[str, Any]], day_of: Callable[[dict[str, Any]], dt.date]) -> None:
        self._file: IO[bytes] = tempfile.TemporaryFile(prefix="cfbilling-days-")  # noqa: SIM115
        self._blocks: dict[dt.date, list[tuple[int, int, int]]] = {}  # (offset, size, records)
        self.counts: dict[dt.date, int] = {}
        self.digests: dict[dt.date, ContentDigest] = {}
        pending: dict[dt.date, list[dict[str, Any]]] = {}
        try:
            for record in records:
                day = day_of(record)
                batch = pending.get(day)
                if batch is None:
                    batch = pending[day] = []
                batch.append(record)
                if len(batch) >= _SPOOL_BATCH:
                    self._dump(day, batch)
                    pending[day] = []
            for day, batch in pending.items():
                if batch:
                    self._dump(day, batch)
            self._file.flush()
        except BaseException:
            self._file.close()
            raise

    def _dump(self, day: dt.date, batch: list[dict[str, Any]]) -> None:
        from airflow_provider_cfbilling.sinks.encoding import encode_lines

        lines = encode_lines(batch)
        digest = self.digests.get(day)
        if digest is None:
            digest = self.digests[day] = ContentDigest()
        digest.add_encoded(lines, batch)
        block = b"\n".join(lines) + b"\n"
        self._blocks.setdefault(day, []).append((self._file.tell(), len(block), len(batch)))
        self.counts[day] = self.counts.get(day, 0) + len(batch)
        self._file.write(block)

    def encoded(self, day: dt.date) -> Iterator[tuple[bytes, int]]:
        """The records of ``day`` as JSON Lines (``encode_json`` of each, one per line) in blocks,
        in arrival order, each with its number of records."""
        for offset, size, count in self._blocks.get(day, ()):
            self._file.seek(offset)
            yield self._file.read(size), count

    def records(self, day: dt.date) -> Iterator[dict[str, Any]]:
        """The records of ``day``, in arrival order (none for a day without usage)."""
        from airflow_provider_cfbilling.sinks.encoding import decode_lines

        for block, _count in self.encoded(day):
            yield from decode_lines(block)

    def __enter__(self) -> DaySpool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._file.close()


def days_of(window: Window) -> list[dt.date]:
    """Every UTC day of ``window``, in order."""
    return [window.start + dt.timedelta(days=offset) for offset in range(window.days)]


__all__ = ["PLACEHOLDERS", "DaySpool", "DestinationTemplate", "counting", "days_of", "parse_destination"]
