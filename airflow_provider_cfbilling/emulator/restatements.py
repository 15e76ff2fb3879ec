"""Restatements: Cloudflare revising a day's usage after it first appeared.

A :class:`Restatement` says "account A's UTC day D is now reported differently": every regular usage
quantity of that day multiplied by ``factor``, and ``corrections`` extra correction rows. ``data.py``
and ``shapes.py`` work out what that does to each record shape; a :class:`RestatementBook` (one per
:class:`~airflow_provider_cfbilling.emulator.core.Emulator`) keeps which days are restated.

Restating a day again *stacks*: the day then stands for all its restatements together, factors
multiplied and correction rows added up (see :func:`combine`), so the result depends only on the
restatements made, in order, never on when the records are read.

The text form used by the command line (``--restate``) and accepted by the control API::

    ACCOUNT:DAY[:FACTOR[:CORRECTIONS]]    e.g.  023e105f4ecef8ad9ca31a8372d0c353:2026-01-08:1.25:3

An empty or omitted ``FACTOR`` or ``CORRECTIONS`` takes its default (:data:`DEFAULT_FACTOR`,
:data:`DEFAULT_CORRECTIONS`).
"""

from __future__ import annotations

import copy
import math
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from airflow_provider_cfbilling.emulator.credentials import ACCOUNT_ID_PATTERN
from airflow_provider_cfbilling.emulator.days import DAY_PATTERN

#: Quantities of a restated day are multiplied by this unless told otherwise.
DEFAULT_FACTOR = 1.1
#: Correction rows a restatement adds unless told otherwise.
DEFAULT_CORRECTIONS = 1
#: Bounds of one restatement (they keep quantities finite and responses reasonable).
MAX_FACTOR = 1000.0
MAX_CORRECTIONS = 1000

_FIELDS = ("account_id", "day", "factor", "corrections")


def parse_day(value: object) -> date:
    """A UTC day from a ``date`` or ``YYYY-MM-DD`` text; ValueError with a readable message otherwise
    (a ``datetime`` too: which UTC day it falls on is for the caller to say)."""
    if isinstance(value, datetime):
        raise ValueError(f"day must be a date, not a datetime ({value!r})")
    if isinstance(value, date):
        return value
    text = str(value).strip()
    if not DAY_PATTERN.match(text):
        raise ValueError(f"day must be a date in YYYY-MM-DD format, got {str(value)!r}")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"day {text!r} is not a valid calendar date") from None


def _factor(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"factor must be a number, got {value!r}")
    try:
        factor = float(value)
    except ValueError:
        raise ValueError(f"factor must be a number, got {value!r}") from None
    if not math.isfinite(factor) or factor <= 0:
        raise ValueError(f"factor must be a positive number (quantities are multiplied by it), got {value!r}")
    if factor > MAX_FACTOR:
        raise ValueError(f"factor must be at most {MAX_FACTOR:g}, got {value!r}")
    return factor


def _corrections(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"corrections must be a whole number, got {value!r}")
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"corrections must be a whole number, got {value!r}") from None
    if not number.is_integer() or not 0 <= number <= MAX_CORRECTIONS:
        raise ValueError(f"corrections must be a whole number from 0 to {MAX_CORRECTIONS}, got {value!r}")
    return int(number)


@dataclass(frozen=True)
class Restatement:
    """One restatement of one account's UTC day (validated on construction).

    :param account_id: the account, 32 lowercase hex characters.
    :param day: the UTC day (``ChargePeriodStart``) whose usage is restated.
    :param factor: every regular usage quantity of the day is multiplied by this (> 0), then rounded
        as usual (whole numbers for countable metrics, 6 decimals otherwise).
    :param corrections: how many ``ChargeClass: "Correction"`` rows the restatement adds (0..1000).
    """

    account_id: str
    day: date
    factor: float = DEFAULT_FACTOR
    corrections: int = DEFAULT_CORRECTIONS

    def __post_init__(self) -> None:
        if not isinstance(self.account_id, str) or not ACCOUNT_ID_PATTERN.match(self.account_id):
            raise ValueError(f"account_id must be 32 lowercase hex characters, got {self.account_id!r}")
        object.__setattr__(self, "day", parse_day(self.day))
        object.__setattr__(self, "factor", _factor(self.factor))
        object.__setattr__(self, "corrections", _corrections(self.corrections))

    @property
    def changes_anything(self) -> bool:
        return self.factor != 1.0 or self.corrections > 0

    @classmethod
    def parse(cls, spec: str) -> Restatement:
        """From the text form ``ACCOUNT:DAY[:FACTOR[:CORRECTIONS]]``."""
        parts = [part.strip() for part in spec.strip().split(":")]
        if len(parts) < 2 or len(parts) > 4:
            raise ValueError(f"restatement {spec!r} must be ACCOUNT:DAY[:FACTOR[:CORRECTIONS]]")
        account_id, day, *rest = parts
        factor = _factor(rest[0]) if len(rest) > 0 and rest[0] else DEFAULT_FACTOR
        corrections = _corrections(rest[1]) if len(rest) > 1 and rest[1] else DEFAULT_CORRECTIONS
        return cls(account_id, parse_day(day), factor, corrections)

    @classmethod
    def from_any(cls, value: str | Mapping[str, Any] | Restatement) -> Restatement:
        """From the text form, a mapping of the fields (``day`` as ``YYYY-MM-DD``) or a restatement."""
        if isinstance(value, Restatement):
            return value
        if isinstance(value, str):
            return cls.parse(value)
        if not isinstance(value, Mapping):
            raise ValueError("a restatement is an object {'account_id', 'day', 'factor', 'corrections'} or a spec")
        unknown = set(value) - set(_FIELDS)
        if unknown:
            raise ValueError(f"unknown restatement fields: {sorted(unknown)}; known: {list(_FIELDS)}")
        for name in ("account_id", "day"):
            if name not in value:
                raise ValueError(f"a restatement needs {name!r}")
        return cls(
            value["account_id"],
            parse_day(value["day"]),
            _factor(value.get("factor", DEFAULT_FACTOR)),
            _corrections(value.get("corrections", DEFAULT_CORRECTIONS)),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "account_id": self.account_id,
            "day": self.day.isoformat(),
            "factor": self.factor,
            "corrections": self.corrections,
        }


def combine(revisions: Sequence[Restatement]) -> Restatement:
    """What a day restated by ``revisions`` (in order, same account and day) stands for: the product
    of the factors (to 12 significant digits) and the sum of the correction rows. Restating 1.1 then
    1.1 is restating 1.21; 2 correction rows then 3 are the same 5 rows as 5 at once. ValueError if
    the combination leaves the bounds of one restatement (factor up to 1000, up to 1000 correction rows)."""
    if not revisions:
        raise ValueError("nothing to combine")
    first = revisions[0]
    factor = 1.0
    corrections = 0
    for revision in revisions:
        if (revision.account_id, revision.day) != (first.account_id, first.day):
            raise ValueError("restatements of different days do not combine")
        factor *= revision.factor
        corrections += revision.corrections
    # 12 significant digits: restating 1.1 then 1.5 is exactly restating 1.65, not 1.6500000000000001.
    factor = float(f"{factor:.12g}")
    try:
        return Restatement(first.account_id, first.day, factor, corrections)
    except ValueError as error:
        raise ValueError(
            f"restating {first.day} again goes too far: {error} (for the day's restatements together)"
        ) from None


class RestatementBook:
    """The restated days of one emulator: (account, day) -> its restatements in the order they were made.

    :param lock: the emulator's lock, so that a reset is atomic with the rest of its state.
    :param restatements: days restated from the start; :meth:`reset` goes back to them.
    """

    def __init__(self, *, lock: threading.RLock, restatements: Iterable[Restatement] = ()) -> None:
        self._lock = lock
        self._days: dict[tuple[str, date], list[Restatement]] = {}
        for restatement in restatements:
            self.add(restatement)
        self._initial = copy.deepcopy(self._days)

    def add(self, restatement: Restatement) -> dict[str, Any]:
        """Restate one more time; returns what the day now stands for, with its ``revisions``.
        ValueError (and nothing stored) if nothing changes or the day's restatements together go
        out of bounds."""
        if not restatement.changes_anything:
            raise ValueError("a restatement must change something: a factor other than 1 or corrections > 0")
        key = (restatement.account_id, restatement.day)
        with self._lock:
            revisions = [*self._days.get(key, []), restatement]
            combined = combine(revisions)  # ValueError (and nothing stored) if it goes out of bounds
            self._days[key] = revisions
        return {**combined.to_dict(), "revisions": len(revisions)}

    def listing(self) -> list[dict[str, Any]]:
        """Every restated day, by account and day, combined, with its ``revisions``."""
        with self._lock:
            items = sorted(self._days.items())
        return [{**combine(revisions).to_dict(), "revisions": len(revisions)} for _, revisions in items]

    def of_account(self, account_id: str) -> dict[date, Restatement]:
        """A snapshot of ``account_id``'s restated days: day -> the day's combined restatement."""
        with self._lock:
            return {
                day: combine(revisions) for (account, day), revisions in self._days.items() if account == account_id
            }

    def clear(self, account_id: str | None = None, day: date | None = None) -> int:
        """Forget restated days (all, or only ``account_id``'s, or only ``day``); returns how many."""
        with self._lock:
            cleared = [
                key
                for key in self._days
                if (account_id is None or key[0] == account_id) and (day is None or key[1] == day)
            ]
            for key in cleared:
                del self._days[key]
        return len(cleared)

    def reset(self) -> None:
        """Back to the days restated from the start."""
        with self._lock:
            self._days = copy.deepcopy(self._initial)
