"""The hook's ``test_connection``: what the UI's Test button and ``airflow connections test`` say.

It checks, in order, what every task needs (valid credentials, a known account, Billing Read on it)
and says which check failed and how to fix it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx

from airflow_provider_cfbilling.endpoints import PAYGO_PATHS
from airflow_provider_cfbilling.exceptions import CloudflareAPIError, CloudflareInputError
from airflow_provider_cfbilling.hooks.transport import _Call


class ConnectionCheck:
    """``test_connection`` for :class:`~airflow_provider_cfbilling.hooks.cloudflare.CloudflareHook`."""

    settings: Any
    redact: Any
    _json: Any
    paygo_usage_endpoint: Any
    get_paygo_usage_info: Any
    get_paygo_usage: Any

    def test_connection(self) -> tuple[bool, str]:
        """Check, in order, what every task needs, and say which check failed and how to fix it.

        1. Credentials: valid and active. User-owned token: ``GET /user/tokens/verify``;
           account-owned token: ``GET /accounts/{account_id}/tokens/verify``; global API key:
           ``GET /accounts/{account_id}`` (the verify endpoints do not take the key).
        2. Account: ``extra.account_id`` is set (an account-owned token and the global key can only
           be checked on their account; every billing call is per account).
        3. Billing Read: one cheap billing request on that account (see below).

        On success the message names what was checked. Messages never hold a credential.
        """
        try:
            settings = self.settings
        except CloudflareInputError as error:
            return False, self.redact(f"Connection fields check failed: {error}")
        account = settings.account_id
        answer = self._test_connection_answer
        step = "Credentials"
        try:
            # ---- 1. credentials (and, where they need one, 2. the account)
            if settings.auth_scheme == "global_key":
                if not account:
                    return False, (
                        "Account check failed: a global API key can only be checked on an account, and "
                        "extra.account_id is not set. Fix: set extra.account_id to the 32-character account id "
                        "(dashboard: Account Home, Account ID), or use an API token with Account > Billing > Read"
                    )
                route = "/accounts/{account_id}"
                try:
                    details = self._json(_Call(path=route.format(account_id=account), endpoint=route))
                except CloudflareAPIError as error:
                    if error.status == 404:
                        return False, self.redact(
                            f"Account check failed: Cloudflare knows no account {account} for this email and global "
                            f"API key (GET {route}: {answer(error)}). Fix: set extra.account_id to the id shown on "
                            "the dashboard's Account Home"
                        )
                    if error.status not in (400, 401, 403):
                        raise
                    return False, self.redact(
                        f"Credentials check failed: Cloudflare rejected the email and global API key for account "
                        f"{account} ({answer(error)}). Fix: check the login (the account email) and the Global API "
                        "Key (My Profile > API Tokens > Global API Key), and that this user is a member of the "
                        "account; better, use an API token with Account > Billing > Read"
                    )
                name = details.get("name") if isinstance(details, dict) else None
                credentials = f"global API key accepted (GET {route}, account name {name or 'not given'})"
                kind = "the global API key (its user)"
            else:
                route = "/user/tokens/verify"
                try:
                    verified = self._json(_Call(path=route, endpoint=route))
                    owner = "user-owned API token"
                except CloudflareAPIError as user_error:
                    if user_error.status not in (400, 401, 403):
                        raise
                    if not account:
                        # Account-owned tokens fail /user/tokens/verify; they can only be verified on
                        # their account, so the missing account id is the problem to report.
                        codes = ", ".join(str(code) for code in user_error.codes) or "none"
                        return False, self.redact(
                            "Account check failed: the token is not a user-owned API token (GET /user/tokens/verify "
                            f"answered HTTP {user_error.status}, code {codes}), and extra.account_id is not set. "
                            "An account-owned token (Manage Account > Account API Tokens) can only be verified on "
                            "its account: set extra.account_id to the id of the account that owns the token. If the "
                            "token is user-owned, it is invalid: paste it again or create a new one"
                        )
                    route = "/accounts/{account_id}/tokens/verify"
                    try:
                        verified = self._json(_Call(path=route.format(account_id=account), endpoint=route))
                    except CloudflareAPIError as account_error:
                        if account_error.status not in (400, 401, 403):
                            raise
                        return False, self.redact(
                            "Credentials check failed: the token is neither a valid user-owned API token "
                            f"(GET /user/tokens/verify: {answer(user_error)}) nor an account-owned token of account "
                            f"{account} (GET {route}: {answer(account_error)}). Fix: paste the token again (no "
                            "'Bearer ' prefix) or create a new one; for an account-owned token, set "
                            "extra.account_id to the account that owns it"
                        )
                    owner = f"account-owned API token of account {account}"
                status = verified.get("status") if isinstance(verified, dict) else None
                if status != "active":
                    return False, self.redact(
                        f"Credentials check failed: the {owner} is {status or 'not active'} (GET {route}). Fix: "
                        "re-enable it, or roll it or create a new one, in the dashboard's API Tokens page, and put "
                        "the new value in the connection's password"
                    )
                credentials = f"{owner} is active (GET {route})"
                kind = "the token"
                step = "Account"
                if not account:
                    return False, (
                        f"Account check failed: the {owner} is active, but extra.account_id is not set, so no "
                        "billing data can be read with this connection alone and Billing Read cannot be checked. "
                        "Fix: set extra.account_id to the 32-character id of the account to read"
                    )

            # ---- 3. Billing Read: one cheap request to the configured PayGo path (extra.paygo_path),
            # the endpoint family the PayGo tasks call. Its info endpoint (/billable-usage/info,
            # /paygo-usage-info) answers a few hundred bytes (subscriptions, no usage records), takes no
            # dates (no range rule, no anchor-day trap) and is a billing route behind Billing Read; a 404
            # there also says the configured path is not served to this account. The beta path
            # (billing/usage/paygo) has no info endpoint: one day [yesterday, today) on it, at most two
            # days of rows aggregated per metric and day under either reading of `to`. Not v2
            # usage: it is "Restricted", so a 403/404 there would not tell a token without Billing Read
            # from an account without v2 access. Not the billing profile: it returns personal data.
            step = "Billing Read"
            paygo = self.paygo_usage_endpoint()
            try:
                if paygo.info_route is not None:
                    billing_check = f"GET {paygo.info_route}"
                    self.get_paygo_usage_info()
                else:
                    today = dt.datetime.now(dt.timezone.utc).date()
                    billing_check = f"GET {paygo.route} for one day"
                    for _record in self.get_paygo_usage(from_date=today - dt.timedelta(days=1), to_date=today):
                        pass
            except CloudflareAPIError as error:
                if error.status == 403:
                    fix = (
                        "give the user a role with billing access (Administrator or Billing) on that account, or "
                        "use an API token with Account > Billing > Read"
                        if settings.auth_scheme == "global_key"
                        else "edit the token (My Profile > API Tokens, or Manage Account > Account API Tokens) and "
                        f"add the permission Account > Billing > Read for account {account}"
                    )
                    return False, self.redact(
                        f"Billing Read check failed: {credentials}, but {kind} lacks Billing Read on account "
                        f"{account} ({billing_check}: {answer(error)}). Every billing task would fail with 403. "
                        f"Fix: {fix}"
                    )
                if error.status == 404 or 7003 in error.codes:
                    return False, self.redact(
                        f"Billing Read check failed: Cloudflare has no route for {billing_check} on account "
                        f"{account} ({answer(error)}; 7003 means 'No route for the URI'): the PayGo path "
                        f"'{settings.paygo_path}' (extra.paygo_path) is not served to this account, or the "
                        "account id is wrong; Billing Read could not be confirmed. Fix: check extra.account_id, "
                        f"or set extra.paygo_path to another of {', '.join(PAYGO_PATHS)}"
                    )
                raise
            return True, self.redact(
                f"All checks passed: credentials: {credentials}; account: {account} (extra.account_id); "
                f"Billing Read: {billing_check} (extra.paygo_path {settings.paygo_path}) answered"
            )
        except (CloudflareAPIError, CloudflareInputError, httpx.HTTPError) as error:
            return False, self.redact(f"{step} check failed: the check could not complete ({answer(error)})")

    @staticmethod
    def _test_connection_answer(error: Exception) -> str:
        """What Cloudflare answered, for :meth:`test_connection`'s messages (redact the result)."""
        if not isinstance(error, CloudflareAPIError) or error.status is None:
            return str(error)
        codes: list[Any] = [*error.codes, *[""] * (len(error.messages) - len(error.codes))]
        messages = [*error.messages, *[""] * (len(error.codes) - len(error.messages))]
        errors = "; ".join(f"{code} {message}".strip() for code, message in zip(codes, messages, strict=True))
        return f"HTTP {error.status}" + (f", Cloudflare errors [{errors}]" if errors else "")
