"""Organizations: which accounts an organization holds, for ``/organizations/{id}/billable/usage``.

Cloudflare's organization usage covers every account of the organization; an unknown organization is
not an error (the endpoint answers ``[]``). The emulator knows one organization by default,
:data:`DEFAULT_ORGANIZATION_ID`, holding :data:`DEFAULT_ORGANIZATION_ACCOUNTS`; more are defined with
``Emulator(organizations={...})``, ``configure(organizations=...)``, ``POST /__emulator__/config`` or
``--organization``. A definition is laid *over* the default organization: an entry for another id adds
an organization, an entry for the default id replaces its accounts (``[]`` empties it).

The text form of the command line::

    ORGANIZATION_ID:ACCOUNT[,ACCOUNT...]    e.g.  5ee5c0c7ea2d4c0e9d3a6f1b2c8e7a41:023e105f4ecef8ad9ca31a8372d0c353
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from airflow_provider_cfbilling.emulator.credentials import ACCOUNT_ID_PATTERN, DEFAULT_ACCOUNT_ID

#: Organization ids look like account ids: 32 lowercase hex characters.
ORGANIZATION_ID_PATTERN = ACCOUNT_ID_PATTERN
#: The organization the emulator knows without being told.
DEFAULT_ORGANIZATION_ID = "5ee5c0c7ea2d4c0e9d3a6f1b2c8e7a41"
#: Its accounts, in the order its records are listed within a day.
DEFAULT_ORGANIZATION_ACCOUNTS: tuple[str, ...] = (
    DEFAULT_ACCOUNT_ID,
    "0123456789abcdef0123456789abcdef",
    "fedcba9876543210fedcba9876543210",
)

Organizations = dict[str, tuple[str, ...]]


def _accounts(organization_id: str, accounts: object) -> tuple[str, ...]:
    if isinstance(accounts, str) or not isinstance(accounts, Iterable):
        raise ValueError(f"the accounts of organization {organization_id} must be a list of account ids")
    listed: list[str] = []
    for account_id in accounts:
        if not isinstance(account_id, str) or not ACCOUNT_ID_PATTERN.match(account_id):
            raise ValueError(f"account_id must be 32 lowercase hex characters, got {account_id!r}")
        if account_id in listed:
            raise ValueError(f"organization {organization_id} lists account {account_id} twice")
        listed.append(account_id)
    return tuple(listed)


def organizations_over_default(definitions: Mapping[str, Iterable[str]] | None) -> Organizations:
    """The organizations in force: the default one, with ``definitions`` laid over it (validated)."""
    organizations: Organizations = {DEFAULT_ORGANIZATION_ID: DEFAULT_ORGANIZATION_ACCOUNTS}
    if definitions is None:
        return organizations
    if not isinstance(definitions, Mapping):
        raise ValueError("organizations must map an organization id to a list of account ids")
    for organization_id, accounts in definitions.items():
        if not isinstance(organization_id, str) or not ORGANIZATION_ID_PATTERN.match(organization_id):
            raise ValueError(f"organization_id must be 32 lowercase hex characters, got {organization_id!r}")
        organizations[organization_id] = _accounts(organization_id, accounts)
    return organizations


def parse_organization_spec(spec: str) -> tuple[str, tuple[str, ...]]:
    """``ORGANIZATION_ID:ACCOUNT[,ACCOUNT...]`` (no accounts after the colon: an empty organization)."""
    organization_id, colon, accounts = spec.strip().partition(":")
    if not colon:
        raise ValueError(f"organization spec {spec!r} must look like ORGANIZATION_ID:ACCOUNT[,ACCOUNT...]")
    organization_id = organization_id.strip()
    if not ORGANIZATION_ID_PATTERN.match(organization_id):
        raise ValueError(f"organization_id must be 32 lowercase hex characters, got {organization_id!r}")
    listed = [account.strip() for account in accounts.split(",") if account.strip()]
    return organization_id, _accounts(organization_id, listed)
