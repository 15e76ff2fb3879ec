"""Fault injection for the emulator: scripted faults per route and request count, and a rate limiter.

A fault is "on route R, for the requests numbered [start, start + count) since the fault was added,
do X". Requests are counted per fault, i.e. per route selector, from the moment the fault is added
(``nth=1`` is the next matching request). The text form used by the CLI and the control API is::

    ROUTE:FIELD:FIELD...      e.g.  v2:nth=3:status=503   paygo:count=2:status=502   *:from_nth=5:latency=3

Fields (any order after the route):

* which requests: ``nth=K`` (only the K-th), ``count=N`` (the next N, or N from ``from_nth``),
  ``from_nth=K`` (every request from the K-th on); none of them: every matching request.
* what happens (one of): ``status=CODE``, ``rate_limit[=SECONDS]``, ``latency=SECONDS``, ``drop``,
  ``truncate[=length|chunked]``, ``success_false[=ERROR_CODE]``, ``not_json[=HTTP_STATUS]``, or
  ``kind=NAME`` with the parameters spelled out.
* parameters: ``retry_after=SECONDS``, ``http_date`` (send ``Retry-After`` as an HTTP date),
  ``code=N`` and ``message=TEXT`` (the Cloudflare error in the body), ``seconds=N``, ``mode=length|chunked``,
  ``status=CODE`` (the HTTP status for kinds other than ``status``).

Route selectors: ``v2``, ``organization-v2`` (``/organizations/{id}/billable/usage``), ``paygo`` (the
beta ``/billing/usage/paygo``), ``paygo-usage``, ``paygo-usage-info``, ``billable-usage``,
``billable-usage-info``, ``subscriptions``, ``billing-history``, ``profile``, ``user-verify``,
``account-verify``, ``account``, ``unknown`` (unrouted paths), and the groups ``verify`` (both verify
routes), ``info`` (both info routes), ``usage`` (the five usage routes: v2, organization v2 and the
three PayGo paths) and ``*`` (everything).
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

ROUTES = (
    "v2",
    "organization-v2",
    "paygo",
    "paygo-usage",
    "paygo-usage-info",
    "billable-usage",
    "billable-usage-info",
    "subscriptions",
    "billing-history",
    "profile",
    "user-verify",
    "account-verify",
    "account",
    "unknown",
)
SELECTOR_GROUPS: Mapping[str, frozenset[str]] = {
    "*": frozenset(ROUTES),
    "verify": frozenset({"user-verify", "account-verify"}),
    "info": frozenset({"paygo-usage-info", "billable-usage-info"}),
    "usage": frozenset({"v2", "organization-v2", "paygo", "paygo-usage", "billable-usage"}),
}
FAULT_KINDS = ("status", "rate_limit", "latency", "drop", "truncate", "success_false", "not_json")
TRUNCATE_MODES = ("length", "chunked")

_ACTION_WORDS = ("rate_limit", "latency", "drop", "truncate", "success_false", "not_json")


def selector_routes(selector: str) -> frozenset[str]:
    """The route names a selector stands for (``ValueError`` if unknown)."""
    if selector in SELECTOR_GROUPS:
        return SELECTOR_GROUPS[selector]
    if selector in ROUTES:
        return frozenset({selector})
    raise ValueError(f"unknown route selector {selector!r}; use one of {[*ROUTES, *SELECTOR_GROUPS]}")


@dataclass
class Fault:
    """One scripted fault. Build it with :meth:`Emulator.add_fault` or :func:`parse_fault_spec`."""

    route: str = "*"
    kind: str = "status"
    status: int | None = None
    code: int | None = None
    message: str | None = None
    retry_after: float | None = None
    retry_after_http_date: bool = False
    seconds: float = 0.0
    mode: str = "length"
    nth: int | None = None
    count: int | None = None
    from_nth: int | None = None
    id: int = 0
    seen: int = field(default=0, compare=False)
    fired: int = field(default=0, compare=False)

    def __post_init__(self) -> None:
        self._routes = selector_routes(self.route)
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; use one of {FAULT_KINDS}")
        if self.nth is not None and self.from_nth is not None:
            raise ValueError("give nth or from_nth, not both")
        if self.nth is not None and self.count is not None:
            raise ValueError("nth selects a single request; it cannot be combined with count")
        for name in ("nth", "count", "from_nth"):
            value = getattr(self, name)
            if value is not None and int(value) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.kind == "status":
            if self.status is None:
                self.status = 500
        elif self.kind == "rate_limit":
            self.status = self.status or 429
            if self.retry_after is None:
                self.retry_after = 1
        elif self.kind == "latency":
            if self.seconds <= 0:
                raise ValueError("a latency fault needs seconds > 0")
            if self.seconds > 600:
                raise ValueError("latency is capped at 600 seconds")
        elif self.kind in ("success_false", "not_json"):
            self.status = self.status or 200
        if self.status is not None and not 100 <= int(self.status) <= 599:
            raise ValueError("status must be an HTTP status code (100..599)")
        if self.mode not in TRUNCATE_MODES:
            raise ValueError(f"truncate mode must be one of {TRUNCATE_MODES}")
        if self.retry_after is not None and self.retry_after < 0:
            raise ValueError("retry_after must be >= 0")

    @property
    def first(self) -> int:
        return self.nth or self.from_nth or 1

    @property
    def last(self) -> float:
        if self.nth is not None:
            return self.nth
        if self.count is not None:
            return self.first + self.count - 1
        return math.inf

    def applies_to(self, route: str) -> bool:
        return route in self._routes

    def observe(self) -> bool:
        """Count one matching request; True if this fault fires on it."""
        self.seen += 1
        return self.first <= self.seen <= self.last

    @property
    def exhausted(self) -> bool:
        return self.seen >= self.last

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["exhausted"] = self.exhausted
        return data


def _number(name: str, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {text!r}")


def _integer(name: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {text!r}")


def parse_fault_spec(spec: str) -> dict[str, Any]:
    """Parse the text form (see the module docstring) into keyword arguments for :class:`Fault`."""
    parts = [part.strip() for part in spec.strip().split(":")]
    if not parts or not parts[0]:
        raise ValueError(f"fault spec {spec!r} must start with a route selector")
    kwargs: dict[str, Any] = {"route": parts[0]}
    actions: list[str] = []
    for part in parts[1:]:
        if not part:
            continue
        name, has_value, value = part.partition("=")
        name = name.strip().lower().replace("-", "_")
        value = value.strip()
        if name in ("nth", "count", "from_nth", "from"):
            kwargs["from_nth" if name == "from" else name] = _integer(name, value)
        elif name == "kind":
            actions.append(value)
        elif name == "status":
            kwargs["status"] = _integer(name, value)
        elif name == "code":
            kwargs["code"] = _integer(name, value)
        elif name == "message":
            kwargs["message"] = value
        elif name == "retry_after":
            kwargs["retry_after"] = _number(name, value)
        elif name in ("http_date", "retry_after_http_date"):
            kwargs["retry_after_http_date"] = (not has_value) or value.lower() in ("1", "true", "yes", "on")
        elif name == "seconds":
            kwargs["seconds"] = _number(name, value)
        elif name == "mode":
            kwargs["mode"] = value
        elif name in _ACTION_WORDS:
            actions.append(name)
            if has_value:
                if name == "rate_limit":
                    kwargs["retry_after"] = _number(name, value)
                elif name == "latency":
                    kwargs["seconds"] = _number(name, value)
                elif name == "truncate":
                    kwargs["mode"] = value
                elif name == "success_false":
                    kwargs["code"] = _integer(name, value)
                elif name == "not_json":
                    kwargs["status"] = _integer(name, value)
        else:
            raise ValueError(f"unknown field {part!r} in fault spec {spec!r}")
    if len(actions) > 1:
        raise ValueError(f"fault spec {spec!r} names more than one kind: {actions}")
    if actions:
        kwargs["kind"] = actions[0]
    elif "status" in kwargs:
        kwargs["kind"] = "status"
    else:
        raise ValueError(f"fault spec {spec!r} says nothing about what to do (e.g. status=503, drop)")
    return kwargs


def fault_from_any(value: str | Mapping[str, Any]) -> Fault:
    """A :class:`Fault` from a text spec or a mapping of :class:`Fault` fields."""
    if isinstance(value, str):
        return Fault(**parse_fault_spec(value))
    allowed = set(Fault.__dataclass_fields__) - {"id", "seen", "fired"}
    unknown = set(value) - allowed
    if unknown:
        raise ValueError(f"unknown fault fields: {sorted(unknown)}")
    return Fault(**dict(value))


@dataclass(frozen=True)
class RateLimitConfig:
    """Cloudflare-like limit: after ``max_requests`` within ``window_seconds``, 429 for ``block_seconds``."""

    max_requests: int
    window_seconds: float = 300.0
    block_seconds: float = 300.0
    retry_after_http_date: bool = False

    def __post_init__(self) -> None:
        if self.max_requests < 1 or self.window_seconds <= 0 or self.block_seconds < 0:
            raise ValueError("rate limit needs max_requests >= 1, window_seconds > 0, block_seconds >= 0")

    @classmethod
    def parse(cls, text: str) -> RateLimitConfig:
        """``MAX/WINDOW/BLOCK`` (seconds), e.g. ``1200/300/300``; WINDOW and BLOCK default to 300."""
        fields = [part.strip() for part in text.strip().split("/")]
        if not 1 <= len(fields) <= 3 or not fields[0]:
            raise ValueError(f"rate limit {text!r} must look like MAX/WINDOW_SECONDS/BLOCK_SECONDS")
        numbers = [_number("rate limit", part) for part in fields]
        window = numbers[1] if len(numbers) > 1 else 300.0
        block = numbers[2] if len(numbers) > 2 else 300.0
        return cls(int(numbers[0]), window, block)

    @classmethod
    def from_any(cls, value: str | Mapping[str, Any] | RateLimitConfig) -> RateLimitConfig:
        if isinstance(value, RateLimitConfig):
            return value
        if isinstance(value, str):
            return cls.parse(value)
        return cls(**dict(value))


class RateLimiter:
    """Sliding-window counter with a block period, measured on the emulator clock."""

    def __init__(self, config: RateLimitConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._stamps: deque[float] = deque(maxlen=config.max_requests)
        self._blocked_until: float | None = None

    def check(self, now: datetime) -> float | None:
        """Record one request at ``now``; None if allowed, else the seconds until requests pass again."""
        moment = now.timestamp()
        cfg = self.config
        with self._lock:
            if self._blocked_until is not None:
                if moment < self._blocked_until:
                    return self._blocked_until - moment
                self._blocked_until = None
            while self._stamps and self._stamps[0] <= moment - cfg.window_seconds:
                self._stamps.popleft()
            if len(self._stamps) >= cfg.max_requests:
                if cfg.block_seconds > 0:
                    self._blocked_until = moment + cfg.block_seconds
                    self._stamps.clear()
                    return cfg.block_seconds
                return max(self._stamps[0] + cfg.window_seconds - moment, 0.0)
            self._stamps.append(moment)
            return None

    def describe(self) -> dict[str, Any]:
        data: dict[str, Any] = asdict(self.config)
        with self._lock:
            data["blocked_until_epoch"] = self._blocked_until
            data["requests_in_window"] = len(self._stamps)
        return data
