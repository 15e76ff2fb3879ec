"""The emulator's switches: their names, how a value given at construction or at runtime is read,
which values are allowed, and their JSON form (``GET /__emulator__/config``).

:class:`Switches` holds them as attributes (``emu.to_inclusive``, ``emu.history_items``...) and changes
several at once, all or nothing (:meth:`Switches.configure`); it is the base of
:class:`~airflow_provider_cfbilling.emulator.core.Emulator`.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from airflow_provider_cfbilling.emulator.billing import MAX_HISTORY_ITEMS
from airflow_provider_cfbilling.emulator.organizations import Organizations, organizations_over_default

#: Every switch, in the order ``GET /__emulator__/config`` lists them.
SETTINGS = (
    "seed",
    "availability_delay",
    "to_inclusive",
    "populate_costs",
    "extra_fields",
    "zones",
    "scale",
    "ignore_metric_filter",
    "shuffle_records",
    "history_items",
    "history_repeat_pages",
    "history_hide_page_count",
    "organizations",
)
_INTEGERS = frozenset({"seed", "zones", "scale", "history_items"})


def as_delay(value: timedelta | float | int) -> timedelta:
    """A delay from a ``timedelta`` or seconds."""
    if isinstance(value, timedelta):
        return value
    return timedelta(seconds=float(value))


def coerce(name: str, value: Any) -> Any:
    """The value switch ``name`` stores for ``value`` (ValueError or TypeError if it cannot be read):
    a delay, organizations laid over the default one, a whole number or a flag."""
    if name == "availability_delay":
        return as_delay(value)
    if name == "organizations":
        return organizations_over_default(value)
    if name in _INTEGERS:
        return int(value)
    return bool(value)


def check_known(names: Mapping[str, Any]) -> None:
    """ValueError naming the unknown switches among ``names``."""
    unknown = set(names) - set(SETTINGS)
    if unknown:
        raise ValueError(f"unknown settings: {sorted(unknown)}; known: {list(SETTINGS)}")


def validate(values: Mapping[str, Any]) -> None:
    """ValueError unless the switches ``values`` (all of them, as stored) go together."""
    if values["zones"] < 0 or values["scale"] < 1:
        raise ValueError("zones must be >= 0 and scale >= 1")
    if not 0 <= values["history_items"] <= MAX_HISTORY_ITEMS:
        raise ValueError(f"history_items must be from 0 to {MAX_HISTORY_ITEMS}")


def to_json(values: Mapping[str, Any]) -> dict[str, Any]:
    """The switches ``values`` as plain JSON-able values (the delay in seconds, organizations as lists)."""
    plain = {name: values[name] for name in SETTINGS}
    plain["availability_delay"] = values["availability_delay"].total_seconds()
    plain["organizations"] = {org: list(accounts) for org, accounts in values["organizations"].items()}
    return plain


class Switches:
    """The switches as attributes, set all or nothing (a base class of ``Emulator``)."""

    seed: int
    availability_delay: timedelta
    to_inclusive: bool
    populate_costs: bool
    extra_fields: bool
    zones: int
    scale: int
    ignore_metric_filter: bool
    shuffle_records: bool
    history_items: int
    history_repeat_pages: bool
    history_hide_page_count: bool
    organizations: Organizations
    _lock: threading.RLock

    def _switches(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in SETTINGS}

    def _init_switches(self, values: Mapping[str, Any]) -> None:
        """Set every switch from ``values`` (ValueError or TypeError if one is invalid)."""
        for name in SETTINGS:
            setattr(self, name, coerce(name, values[name]))
        validate(self._switches())

    def configure(self, **settings: Any) -> None:
        """Change switches at runtime: ``seed``, ``availability_delay`` (timedelta or seconds),
        ``to_inclusive``, ``populate_costs``, ``extra_fields``, ``zones``, ``scale``, ``ignore_metric_filter``,
        ``shuffle_records``, ``history_items``, ``history_repeat_pages``, ``history_hide_page_count`` and
        ``organizations`` (laid over the default organization, replacing earlier definitions). Nothing
        changes if any value is invalid (ValueError)."""
        check_known(settings)
        with self._lock:
            before = self._switches()
            try:
                for name, value in settings.items():
                    setattr(self, name, coerce(name, value))
                validate(self._switches())
            except (ValueError, TypeError):
                for name, value in before.items():
                    setattr(self, name, value)
                raise
