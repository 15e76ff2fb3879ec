"""The provider's exceptions: one family for API failures, one for bad input.

``CloudflareAPIError`` and its subclasses carry the HTTP status, Cloudflare's error codes and
messages and the endpoint; they never carry a credential. ``CloudflareInputError`` is raised
before any request is sent, and says which parameter was wrong and how to fix it.
"""

from __future__ import annotations

from collections.abc import Sequence


class CloudflareInputError(ValueError):
    """A parameter or connection field is invalid; raised before any request is sent."""

    def __init__(self, parameter: str, problem: str, fix: str) -> None:
        self.parameter = parameter
        self.problem = problem
        self.fix = fix
        super().__init__(f"{parameter}: {problem}. {fix}")


class CloudflareAPIError(Exception):
    """Cloudflare answered with an error, or with something that is not a valid answer."""

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


class CloudflareAuthError(CloudflareAPIError):
    """The credentials are missing, malformed, wrong, expired or revoked."""


class CloudflarePermissionError(CloudflareAPIError):
    """The credentials are valid but lack a permission (Billing Read) or the account is not theirs."""


class CloudflareNotFoundError(CloudflareAPIError):
    """The route or object does not exist (Cloudflare code 7003: no route for the URI)."""


class CloudflareRateLimitError(CloudflareAPIError):
    """HTTP 429 persisted past the retry budget."""


class CloudflareServerError(CloudflareAPIError):
    """HTTP 5xx, a dropped connection, a timeout or a malformed body persisted past the retry budget."""


__all__ = [
    "CloudflareAPIError",
    "CloudflareAuthError",
    "CloudflareInputError",
    "CloudflareNotFoundError",
    "CloudflarePermissionError",
    "CloudflareRateLimitError",
    "CloudflareServerError",
]
