"""What the server consults and records for every request: armed faults, the rate limit, per-route
counts, the shuffle counter and the secret-free request log.

:class:`Traffic` is the emulator's request-side state. The HTTP server (``server.py``) calls
:meth:`~Traffic.select_faults`, :meth:`~Traffic.check_rate_limit` and :meth:`~Traffic.record_request` once
per request, and the usage handlers :meth:`~Traffic.next_shuffle_key` once per shuffled response;
:class:`~airflow_provider_cfbilling.emulator.core.Emulator` exposes the rest (arming and clearing faults,
the rate limit, the log) as its own methods and reaches this object as ``emulator.traffic``. A test that
needs to see each request as it arrives can wrap those three methods on ``emulator.traffic``.
"""

from __future__ import annotations

import copy
import re
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from airflow_provider_cfbilling.emulator.credentials import EMAIL_PATTERN, GLOBAL_KEY_PATTERN, TOKEN_PATTERN
from airflow_provider_cfbilling.emulator.faults import Fault, RateLimitConfig, RateLimiter

REDACTED = "[REDACTED]"
_SENSITIVE_NAME = re.compile(r"token|key|secret|passw|auth|email|signature|credential|session", re.I)
#: The longest a request may be held by latency faults (seconds).
MAX_LATENCY = 600.0


def fresh_copy(fault: Fault) -> Fault:
    """A copy of ``fault`` with its counters at zero (armed faults are never shared)."""
    fresh = copy.copy(fault)
    fresh.seen = 0
    fresh.fired = 0
    return fresh


class Traffic:
    """Faults, rate limit, counters and request log of one emulator.

    :param now: the emulator clock (rate-limit windows are measured on it).
    :param secrets: the configured credentials' secret values, asked for whenever something is redacted.
    :param lock: the emulator's lock, so that a reset is atomic with the rest of the emulator's state.
    :param faults: faults armed at the start and re-armed (counters at zero) by :meth:`reset`.
    :param rate_limit: the rate limit at the start and after :meth:`reset`; None: no limit.
    :param log_limit: how many requests the log keeps (oldest dropped first).
    """

    def __init__(
        self,
        *,
        now: Callable[[], datetime],
        secrets: Callable[[], Iterable[str]],
        lock: threading.RLock,
        faults: Iterable[Fault] = (),
        rate_limit: RateLimitConfig | None = None,
        log_limit: int = 10_000,
    ) -> None:
        self._now = now
        self._secrets = secrets
        self._lock = lock
        self._initial_faults = [fresh_copy(fault) for fault in faults]
        self._initial_rate_limit = rate_limit
        self._faults: list[Fault] = []
        self._fault_ids = 0
        self._route_counts: Counter[str] = Counter()
        self._rate_limiter: RateLimiter | None = None
        self._log: deque[dict[str, Any]] = deque(maxlen=max(1, int(log_limit)))
        self._shuffled_responses = 0
        self._restore_faults_and_limits()

    def reset(self) -> None:
        """The startup faults (counters at zero) and rate limit, no blocks, an empty log and shuffle counter."""
        with self._lock:
            self._restore_faults_and_limits()
            self._shuffled_responses = 0
            self._log.clear()

    def _restore_faults_and_limits(self) -> None:
        with self._lock:
            self._faults = []
            self._route_counts.clear()
            for fault in self._initial_faults:
                self.arm(fresh_copy(fault))
            limit = self._initial_rate_limit
            self._rate_limiter = RateLimiter(limit) if limit is not None else None

    # -- faults ----------------------------------------------------------------------------------

    def arm(self, fault: Fault) -> Fault:
        """Arm ``fault`` (it gets the next id); returns it."""
        with self._lock:
            self._fault_ids += 1
            fault.id = self._fault_ids
            self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._lock:
            self._faults = []

    @property
    def faults(self) -> list[dict[str, Any]]:
        with self._lock:
            return [fault.to_dict() for fault in self._faults]

    def select_faults(self, route: str) -> tuple[float, Fault | None]:
        """Count one request on ``route``; return (total latency, the fault that answers it or None)."""
        latency = 0.0
        action: Fault | None = None
        with self._lock:
            self._route_counts[route] += 1
            for fault in self._faults:
                if not fault.applies_to(route) or not fault.observe():
                    continue
                fault.fired += 1
                if fault.kind == "latency":
                    latency += fault.seconds
                elif action is None:
                    action = fault
        return min(latency, MAX_LATENCY), action

    def route_counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._route_counts)

    # -- rate limit ------------------------------------------------------------------------------

    def set_rate_limit(self, config: RateLimitConfig | None) -> None:
        """Replace the rate limit (counters and block start afresh); None removes it."""
        with self._lock:
            self._rate_limiter = RateLimiter(config) if config is not None else None

    def rate_limit_state(self) -> dict[str, Any] | None:
        """The rate limit's configuration and current counters, or None without a limit."""
        limiter = self._rate_limiter
        return limiter.describe() if limiter is not None else None

    def check_rate_limit(self) -> tuple[float, bool] | None:
        """Count one request against the rate limit: None, or (seconds to wait, send an HTTP date)."""
        limiter = self._rate_limiter
        if limiter is None:
            return None
        wait = limiter.check(self._now())
        if wait is None:
            return None
        return wait, limiter.config.retry_after_http_date

    # -- shuffled responses ----------------------------------------------------------------------

    def next_shuffle_key(self, seed: int) -> str:
        """A fresh seed for one shuffled response (``shuffle_records``): the data seed and a counter of
        shuffled responses, so the n-th shuffled response after a start or :meth:`reset` is always
        ordered the same way."""
        with self._lock:
            self._shuffled_responses += 1
            return f"{seed}|{self._shuffled_responses}"

    # -- request log -----------------------------------------------------------------------------

    def _secret_values(self, extra: Iterable[str]) -> list[str]:
        return [value for value in (*self._secrets(), *extra) if value and len(value) >= 6]

    @staticmethod
    def _is_secret(text: str, secrets: list[str]) -> bool:
        if not text:
            return False
        if TOKEN_PATTERN.match(text) or GLOBAL_KEY_PATTERN.match(text) or EMAIL_PATTERN.match(text):
            return True
        lowered = text.lower()
        return any(secret.lower() in lowered for secret in secrets)

    def redact_query(self, query: Mapping[str, list[str]], presented: Iterable[str] = ()) -> dict[str, list[str]]:
        """A copy of ``query`` without anything that looks like a credential."""
        secrets = self._secret_values(presented)
        clean: dict[str, list[str]] = {}
        for name, values in query.items():
            key = REDACTED if self._is_secret(name, secrets) else name
            if key != REDACTED and _SENSITIVE_NAME.search(name):
                clean.setdefault(key, []).extend(REDACTED for _ in values)
                continue
            clean.setdefault(key, []).extend(REDACTED if self._is_secret(v, secrets) else v for v in values)
        return clean

    def redact_path(self, path: str, presented: Iterable[str] = ()) -> str:
        """``path`` with every segment that looks like a credential replaced."""
        secrets = self._secret_values(presented)
        return "/".join(REDACTED if self._is_secret(part, secrets) else part for part in path.split("/"))

    def record_request(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self._log.append(entry)

    @property
    def request_log(self) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(list(self._log))

    def clear_request_log(self) -> None:
        with self._lock:
            self._log.clear()
