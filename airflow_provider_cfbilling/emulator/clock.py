"""The emulator's clock: decides "now" for data availability, defaults and rate-limit windows.

Three modes, switchable at any time and safe to use from several threads:

* real: the machine's UTC time (the default);
* frozen: a fixed instant that only moves when told to (``advance``);
* running from an offset: real time shifted to start at a chosen instant, then ticking.
"""

from __future__ import annotations

import threading
from datetime import date, datetime, timedelta, timezone


def to_utc(value: datetime) -> datetime:
    """Return ``value`` as an aware UTC datetime (naive values are taken to be UTC already)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def parse_instant(text: str) -> datetime:
    """Parse an ISO 8601 instant such as ``2026-01-10T12:00:00Z`` (or a bare date, taken as midnight UTC)."""
    value = text.strip()
    if not value:
        raise ValueError("empty timestamp")
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    if len(value) == 10:
        return datetime.combine(date.fromisoformat(value), datetime.min.time(), tzinfo=timezone.utc)
    return to_utc(datetime.fromisoformat(value))


def format_instant(value: datetime) -> str:
    """Format an instant the way Cloudflare does: ``2026-01-10T12:00:00Z`` (microseconds kept if any)."""
    return to_utc(value).isoformat().replace("+00:00", "Z")


class EmulatorClock:
    """A settable clock. ``now()`` always returns an aware UTC datetime."""

    def __init__(self, start: datetime | None = None, *, running: bool = False) -> None:
        self._lock = threading.Lock()
        self._frozen: datetime | None = None
        self._offset = timedelta(0)
        if start is not None:
            self.set(start, running=running)

    @staticmethod
    def _real_now() -> datetime:
        return datetime.now(timezone.utc)

    def now(self) -> datetime:
        with self._lock:
            if self._frozen is not None:
                return self._frozen
            return self._real_now() + self._offset

    @property
    def mode(self) -> str:
        with self._lock:
            if self._frozen is not None:
                return "frozen"
            return "real" if not self._offset else "offset"

    def set(self, value: datetime, *, running: bool = False) -> None:
        """Freeze the clock at ``value``, or with ``running=True`` let it tick on from ``value``."""
        instant = to_utc(value)
        with self._lock:
            if running:
                self._frozen = None
                self._offset = instant - self._real_now()
            else:
                self._frozen = instant
                self._offset = timedelta(0)

    def advance(self, seconds: float) -> None:
        """Move the clock forward (or back, with a negative number) by ``seconds``."""
        delta = timedelta(seconds=float(seconds))
        with self._lock:
            if self._frozen is not None:
                self._frozen = self._frozen + delta
            else:
                self._offset = self._offset + delta

    def use_real_time(self) -> None:
        """Go back to the machine's own UTC time."""
        with self._lock:
            self._frozen = None
            self._offset = timedelta(0)

    def describe(self) -> dict[str, str]:
        return {"now": format_instant(self.now()), "mode": self.mode}
