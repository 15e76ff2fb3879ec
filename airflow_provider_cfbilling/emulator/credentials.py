"""Credentials the emulator accepts: API tokens (user-owned, account-owned) and global API keys.

The defaults are well-known, fake values so DAG developers and tests can use them anywhere. Nothing in
here is ever logged by the emulator; the request log records only the *scheme* a request used.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

#: The account every default credential can reach (the id used in Cloudflare's own examples).
DEFAULT_ACCOUNT_ID = "023e105f4ecef8ad9ca31a8372d0c353"
#: User-owned API token with Billing Read; may access any account.
DEFAULT_TOKEN = "emulator_user_token_billing_read_0000001"
#: Account-owned API token with Billing Read, owned by ``DEFAULT_ACCOUNT_ID`` only.
DEFAULT_ACCOUNT_TOKEN = "emulator_account_token_billing_read_0001"
#: User-owned API token *without* Billing Read: verify and ``/accounts/{id}`` work, billing answers 403.
NO_BILLING_TOKEN = "emulator_user_token_no_billing_read_0001"
#: Email and global API key pair (the legacy ``X-Auth-Email`` + ``X-Auth-Key`` scheme).
DEFAULT_EMAIL = "developer@example.com"
DEFAULT_GLOBAL_KEY = "deadbeefdeadbeefdeadbeefdeadbeef00001"

TOKEN_PATTERN = re.compile(r"^[A-Za-z0-9_-]{40}$")
GLOBAL_KEY_PATTERN = re.compile(r"^[0-9a-f]{37}$")
ACCOUNT_ID_PATTERN = re.compile(r"^[0-9a-f]{32}$")
EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+$")

TOKEN_STATUSES = ("active", "disabled", "expired")


@dataclass(frozen=True)
class ApiToken:
    """One API token.

    :param value: the secret, 40 characters of ``[A-Za-z0-9_-]``.
    :param owner: ``"user"`` (may access any account) or ``"account"`` (only ``account_id``).
    :param account_id: the owning account of an account-owned token.
    :param billing_read: whether the token holds Billing Read; without it billing routes answer 403 10000.
    :param status: ``active``, ``disabled`` or ``expired`` (reported by the verify endpoints; only
        active tokens are accepted elsewhere).
    :param token_id: the public identifier reported by verify; derived from the value when omitted.
    """

    value: str
    owner: str = "user"
    account_id: str | None = None
    billing_read: bool = True
    status: str = "active"
    token_id: str | None = None
    expires_on: str | None = None

    def __post_init__(self) -> None:
        if not TOKEN_PATTERN.match(self.value):
            raise ValueError("an API token must be 40 characters of [A-Za-z0-9_-]")
        if self.owner not in ("user", "account"):
            raise ValueError("owner must be 'user' or 'account'")
        if self.owner == "account" and not (self.account_id and ACCOUNT_ID_PATTERN.match(self.account_id)):
            raise ValueError("an account-owned token needs a 32-hex account_id")
        if self.status not in TOKEN_STATUSES:
            raise ValueError(f"status must be one of {TOKEN_STATUSES}")

    @property
    def public_id(self) -> str:
        if self.token_id:
            return self.token_id
        return hashlib.blake2b(b"cfbilling-emulator-token-id|" + self.value.encode(), digest_size=16).hexdigest()

    def __repr__(self) -> str:  # never show the secret
        return (
            f"ApiToken(owner={self.owner!r}, account_id={self.account_id!r}, "
            f"billing_read={self.billing_read!r}, status={self.status!r}, value=***)"
        )


@dataclass(frozen=True)
class GlobalKey:
    """An account email + global API key pair (37 hex characters)."""

    email: str
    key: str

    def __post_init__(self) -> None:
        if not EMAIL_PATTERN.match(self.email):
            raise ValueError("email must look like name@domain")
        if not GLOBAL_KEY_PATTERN.match(self.key):
            raise ValueError("a global API key must be 37 lowercase hex characters")

    def __repr__(self) -> str:
        return "GlobalKey(email=***, key=***)"


@dataclass(frozen=True)
class Credentials:
    """The set of credentials the emulator accepts."""

    tokens: tuple[ApiToken, ...] = ()
    global_keys: tuple[GlobalKey, ...] = ()
    _by_value: Mapping[str, ApiToken] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tokens", tuple(self.tokens))
        object.__setattr__(self, "global_keys", tuple(self.global_keys))
        object.__setattr__(self, "_by_value", {token.value: token for token in self.tokens})

    @classmethod
    def default(cls) -> Credentials:
        """The documented defaults: user token, account token, global key, token without Billing Read."""
        return cls(
            tokens=(
                ApiToken(DEFAULT_TOKEN, owner="user"),
                ApiToken(DEFAULT_ACCOUNT_TOKEN, owner="account", account_id=DEFAULT_ACCOUNT_ID),
                ApiToken(NO_BILLING_TOKEN, owner="user", billing_read=False),
            ),
            global_keys=(GlobalKey(DEFAULT_EMAIL, DEFAULT_GLOBAL_KEY),),
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Credentials:
        """Build from ``{"tokens": [{"value": ..., "owner": ...}, ...], "global_keys": [{"email", "key"}]}``.

        With ``"include_defaults": true`` the default credentials are accepted as well.
        """
        tokens = [ApiToken(**dict(item)) for item in data.get("tokens", ())]
        keys = [GlobalKey(**dict(item)) for item in data.get("global_keys", ())]
        if data.get("include_defaults"):
            base = cls.default()
            tokens = [*base.tokens, *tokens]
            keys = [*base.global_keys, *keys]
        return cls(tokens=tuple(tokens), global_keys=tuple(keys))

    def with_tokens(self, *tokens: ApiToken) -> Credentials:
        return Credentials(tokens=(*self.tokens, *tokens), global_keys=self.global_keys)

    def with_global_keys(self, *keys: GlobalKey) -> Credentials:
        return Credentials(tokens=self.tokens, global_keys=(*self.global_keys, *keys))

    def find_token(self, value: str) -> ApiToken | None:
        return self._by_value.get(value)

    def find_global_key(self, email: str, key: str) -> GlobalKey | None:
        for pair in self.global_keys:
            if pair.key == key and pair.email.lower() == email.lower():
                return pair
        return None

    def secrets(self) -> Iterable[str]:
        """Every secret value (tokens, keys, emails), for redaction."""
        for token in self.tokens:
            yield token.value
        for pair in self.global_keys:
            yield pair.key
            yield pair.email
