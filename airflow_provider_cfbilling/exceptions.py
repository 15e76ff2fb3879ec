"""The provider's exceptions: one family for API failures, one for bad input.

``CloudflareAPIError`` and its subclasses carry the HTTP status, Cloudflare's error codes and
messages and the endpoint; they never carry a credential. ``CloudflareInputError`` is raised
before any request is sent, and says which parameter was wrong and how to fix it.

Every one of them says whether it is worth trying again (:attr:`~CloudflareAPIError.retryable`):
the hook, the trigger, the sensor and Airflow all decide from that one place.

- **Permanent** (``retryable`` is False): bad input, bad credentials, a missing permission, an
  unknown route, any other 3xx/4xx answer except 408/409/429. These classes also derive from
  Airflow's ``AirflowFailException``, so a task that raises one fails at once, **without** its
  Airflow ``retries`` (a mistyped token must not take ``retries x retry_delay`` to fail), while
  ``except CloudflareAuthError`` and friends keep working as before.
- **Transient** (``retryable`` is True): 429, 5xx, 408/409, network errors, garbled bodies and a
  200 with ``success: false``. The hook retries them first; past its retry budget they fail the
  task like any error, so Airflow's ``retries`` apply.
"""

from __future__ import annotations

from collections.abc import Sequence

from airflow_provider_cfbilling.version_compat import AirflowFailException

# Client-error statuses that are worth asking again (request timeout, conflict, rate limit).
RETRYABLE_STATUSES = frozenset({408, 409, 429})


def retryable_status(status: int | None) -> bool:
    """Whether asking again later can change an answer with HTTP ``status`` (None: no answer at all).

    3xx and 4xx answers are final, except 408, 409 and 429; 5xx, no answer (a network error) and
    a 2xx that reports an error (``success: false``) may go away.
    """
    return status is None or status in RETRYABLE_STATUSES or not 300 <= status < 500


class CloudflareInputError(ValueError, AirflowFailException):
    """A parameter or connection field is invalid; raised before any request is sent.

    Permanent: a ``ValueError`` and an ``AirflowFailException`` (the task fails without retries).
    """

    def __init__(self, parameter: str, problem: str, fix: str) -> None:
        self.parameter = parameter
        self.problem = problem
        self.fix = fix
        super().__init__(f"{parameter}: {problem}. {fix}")

    def __reduce__(self) -> tuple[type[CloudflareInputError], tuple[str, str, str]]:
        return type(self), (self.parameter, self.problem, self.fix)

    def serialize(self) -> tuple[str, tuple[str, str, str], dict[str, object]]:
        """``AirflowException.serialize``, with the constructor's real arguments."""
        cls = type(self)
        return f"{cls.__module__}.{cls.__name__}", (self.parameter, self.problem, self.fix), {}

    @property
    def retryable(self) -> bool:
        """Always False: the input has to be fixed."""
        return False


class CloudflareAPIError(Exception):
    """Cloudflare answered with an error, or with something that is not a valid answer.

    Raised as such only for answers whose :attr:`retryable` follows from the HTTP status alone
    (408, 409, a 200 with ``success: false``, a record the API should not have sent); every
    other failure has its own subclass, permanent or transient.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        codes: Sequence[int] = (),
        messages: Sequence[str] = (),
        endpoint: str = "",
    ) -> None:
        self.status = status
        self.codes = list(codes)
        self.messages = list(messages)
        self.endpoint = endpoint
        self.summary = message
        super().__init__(self._render())

    def _render(self) -> str:
        parts = [self.summary]
        if self.endpoint:
            parts.append(f"endpoint {self.endpoint}")
        if self.status is not None:
            parts.append(f"HTTP {self.status}")
        if self.codes or self.messages:
            pairs = [
                f"{code}: {message}" if message else str(code)
                for code, message in zip(self.codes, self.messages + [""] * len(self.codes), strict=False)
            ]
            extra = self.messages[len(self.codes) :]
            parts.append("Cloudflare errors [" + "; ".join(pairs + extra) + "]")
        return " | ".join(parts)

    @property
    def retryable(self) -> bool:
        """Whether trying again later may succeed (see :func:`retryable_status`)."""
        return retryable_status(self.status)


class CloudflarePermanentError(CloudflareAPIError, AirflowFailException):
    """An answer that asking again will not change: the task fails without Airflow retries.

    The base of :class:`CloudflareAuthError`, :class:`CloudflarePermissionError`,
    :class:`CloudflareNotFoundError` and :class:`CloudflareRequestError`.
    """

    @property
    def retryable(self) -> bool:
        return False


class CloudflareRequestError(CloudflarePermanentError):
    """Cloudflare refused the request itself: a 4xx other than 401/403/404/408/409/429 (e.g. 400
    with code 1183, invalid request parameters), or a redirect (never followed)."""


class CloudflareAuthError(CloudflarePermanentError):
    """The credentials are missing, malformed, wrong, expired or revoked."""


class CloudflarePermissionError(CloudflarePermanentError):
    """The credentials are valid but lack a permission (Billing Read) or the account is not theirs."""


class CloudflareNotFoundError(CloudflarePermanentError):
    """The route or object does not exist (Cloudflare code 7003: no route for the URI)."""


class CloudflareRateLimitError(CloudflareAPIError):
    """HTTP 429 persisted past the retry budget."""

    @property
    def retryable(self) -> bool:
        return True


class CloudflareServerError(CloudflareAPIError):
    """HTTP 5xx, a dropped connection, a timeout or a malformed body persisted past the retry budget."""

    @property
    def retryable(self) -> bool:
        return True


__all__ = [
    "RETRYABLE_STATUSES",
    "CloudflareAPIError",
    "CloudflareAuthError",
    "CloudflareInputError",
    "CloudflareNotFoundError",
    "CloudflarePermanentError",
    "CloudflarePermissionError",
    "CloudflareRateLimitError",
    "CloudflareRequestError",
    "CloudflareServerError",
    "retryable_status",
]
