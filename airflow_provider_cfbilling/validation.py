"""Checks on user input, shared by the hook, the operators and the sensor.

Each check raises :class:`~airflow_provider_cfbilling.exceptions.CloudflareInputError` naming the
parameter, what was wrong and how to fix it, before any request is sent.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from airflow_provider_cfbilling.endpoints import PAYGO_PATHS, USAGE_SOURCES
from airflow_provider_cfbilling.exceptions import CloudflareInputError
from airflow_provider_cfbilling.records import KEY_STYLES

ACCOUNT_ID_PATTERN = re.compile(r"^[0-9a-f]{32}$")
DATE_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}$")  # a calendar date, nothing more


def account_id(value: Any, parameter: str = "account_id") -> str:
    """A Cloudflare account tag: 32 lowercase hexadecimal characters."""
    if value is None or value == "":
        raise CloudflareInputError(
            parameter,
            "no account id was given",
            "Pass account_id=..., or set extra.account_id on the cloudflare connection",
        )
    if not isinstance(value, str):
        raise CloudflareInputError(
            parameter, f"expected a string, got {type(value).__name__}", "Pass the 32-character account tag"
        )
    candidate = value.strip().lower()
    if not ACCOUNT_ID_PATTERN.match(candidate):
        raise CloudflareInputError(
            parameter,
            f"{value!r} is not a Cloudflare account tag",
            "Use the 32 hexadecimal characters shown under Account ID in the Cloudflare dashboard",
        )
    return candidate


def organization_id(value: Any, parameter: str = "organization_id") -> str:
    """A Cloudflare organization id: 32 lowercase hexadecimal characters, like an account tag."""
    if not isinstance(value, str) or not ACCOUNT_ID_PATTERN.match(value.strip().lower()):
        raise CloudflareInputError(
            parameter,
            f"{value!r} is not a Cloudflare organization id",
            "Use the 32 hexadecimal characters of the organization's id (dashboard: Organizations)",
        )
    return value.strip().lower()


def api_date(value: Any, parameter: str) -> dt.date:
    """A calendar date for a ``from``/``to`` query parameter; timestamps are refused."""
    if isinstance(value, dt.datetime):
        raise CloudflareInputError(
            parameter,
            f"{value.isoformat()} is a timestamp; the API takes dates only",
            "Pass a date (YYYY-MM-DD) or a datetime.date",
        )
    if isinstance(value, dt.date):
        return dt.date(value.year, value.month, value.day)
    if isinstance(value, str):
        text = value.strip()
        if DATE_PATTERN.match(text):
            try:
                return dt.date.fromisoformat(text)
            except ValueError:
                pass
            raise CloudflareInputError(parameter, f"{value!r} is not a real calendar date", "Use YYYY-MM-DD")
        raise CloudflareInputError(
            parameter,
            f"{value!r} is not a date" + (" (it looks like a timestamp)" if "T" in text or ":" in text else ""),
            "The API takes dates only: use YYYY-MM-DD",
        )
    raise CloudflareInputError(
        parameter, f"expected a date, got {type(value).__name__}", "Pass a YYYY-MM-DD string or a datetime.date"
    )


def date_range(
    from_date: Any,
    to_date: Any,
    *,
    both_or_neither: bool,
    max_gap_days: int | None,
    limit_days: int | None = None,
) -> tuple[dt.date | None, dt.date | None]:
    """Validate a request's ``from``/``to`` pair: ``to - from`` at most ``max_gap_days``, so the
    request covers at most ``limit_days`` days whether the server reads ``to`` inclusively or not."""
    start = None if from_date is None else api_date(from_date, "from_date")
    end = None if to_date is None else api_date(to_date, "to_date")
    if both_or_neither and (start is None) != (end is None):
        missing = "to_date" if end is None else "from_date"
        raise CloudflareInputError(
            missing,
            "from and to must be given together on this endpoint",
            "Pass both from_date and to_date, or neither for the endpoint's default range",
        )
    if start is not None and end is not None:
        if end < start:
            raise CloudflareInputError(
                "to_date",
                f"{end} is before from_date {start}",
                "Swap the dates: from_date must not be after to_date",
            )
        if max_gap_days is not None and (end - start).days > max_gap_days:
            limit = limit_days if limit_days is not None else max_gap_days + 1
            raise CloudflareInputError(
                "to_date",
                f"from {start} to {end} is {(end - start).days} days apart; read with 'to' inclusive that covers "
                f"{(end - start).days + 1} days, more than the {limit} one request may cover (whether 'to' is "
                "inclusive is not documented, so requests must fit under both readings)",
                f"Split the range so that to_date is at most {max_gap_days} days after from_date (the operators "
                "do this for you)",
            )
    return start, end


def positive_number(value: Any, parameter: str, *, allow_zero: bool = True, integer: bool = False) -> float:
    """A non-negative number from an argument or a connection extra (which may hold strings)."""
    kind = "integer" if integer else "number"
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise CloudflareInputError(parameter, f"{value!r} is not a {kind}", f"Use a {kind} such as 60") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise CloudflareInputError(parameter, f"{value!r} is not a finite {kind}", f"Use a finite {kind}")
    if number < 0 or (number == 0 and not allow_zero):
        bound = "zero or more" if allow_zero else "greater than zero"
        raise CloudflareInputError(parameter, f"{value!r} is negative" if number < 0 else "is zero", f"Use {bound}")
    if integer and number != int(number):
        raise CloudflareInputError(parameter, f"{value!r} is not a whole number", "Use a whole number")
    return number


def boolean(value: Any, parameter: str) -> bool:
    """A boolean from an argument or a connection extra ("true"/"false" strings allowed)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"true", "false", "1", "0", "yes", "no"}:
        return value.strip().lower() in {"true", "1", "yes"}
    raise CloudflareInputError(parameter, f"{value!r} is not a boolean", "Use true or false")


def whole_number(value: Any, parameter: str, *, minimum: int, unit: str = "", fix: str) -> int:
    """An operator argument that counts something: an ``int`` (not a bool, not a string) >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        what = f"a whole number of {unit} >= {minimum}" if unit else f"a whole number >= {minimum}"
        raise CloudflareInputError(parameter, f"{value!r} is not {what}", fix)
    return value


def flag(value: Any, parameter: str) -> bool:
    """An operator argument that switches something: ``True`` or ``False`` (strings are refused:
    a templated ``"False"`` would be truthy)."""
    if not isinstance(value, bool):
        raise CloudflareInputError(
            parameter, f"{value!r} is not a boolean", f"Use {parameter}=True or {parameter}=False"
        )
    return value


def metric(value: Any, parameter: str = "metric") -> str | None:
    """A billable metric id (``x_BillableMetricId``), or None for every metric (callers whose
    templated argument may render empty pass ``value or None``)."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or any(char.isspace() for char in value.strip()):
        raise CloudflareInputError(
            parameter, f"{value!r} is not a billable metric id", "Use an id such as workers_standard_requests"
        )
    return value.strip()


def paygo_path(value: Any, parameter: str = "paygo_path", *, template_ok: bool = False) -> str | None:
    """One of the PayGo paths (slashes around it ignored), or None when unset.

    With ``template_ok`` (checks at DAG-parse time) a value holding a Jinja template is returned as
    it is: it is checked again once rendered.
    """
    if value is None or value == "":
        return None
    if template_ok and isinstance(value, str) and "{{" in value:
        return value
    path = value.strip("/") if isinstance(value, str) else value
    if path not in PAYGO_PATHS:
        raise CloudflareInputError(parameter, f"{value!r} is not a PayGo path", f"Use one of {', '.join(PAYGO_PATHS)}")
    return str(path)


def usage_arguments(source: Any, metric: Any, path: Any) -> None:
    """The parse-time rules of a usage task's ``source``, ``metric`` and ``paygo_path``: a known
    source, a metric filter on v2 only, a PayGo path (``path``) on PayGo only (templated values are checked
    once rendered)."""
    if source not in USAGE_SOURCES:
        raise CloudflareInputError(
            "source",
            f"{source!r} is not a usage source",
            "Use source='v2' (FOCUS usage, the default) or source='paygo' (PayGo usage; pick its path with paygo_path)",
        )
    if source == "paygo" and metric not in (None, ""):
        raise CloudflareInputError(
            "metric", "the PayGo endpoints have no metric filter", "Drop metric, or use source='v2'"
        )
    if source == "v2" and path not in (None, ""):
        raise CloudflareInputError(
            "paygo_path", "it chooses a PayGo path, but source is 'v2'", "Drop paygo_path, or set source='paygo'"
        )
    paygo_path(path, template_ok=True)


def key_style(value: Any) -> str:
    """How record keys are written: ``"snake"`` or ``"api"`` (:data:`records.KEY_STYLES`)."""
    if value not in KEY_STYLES:
        raise CloudflareInputError(
            "key_style", f"{value!r} is not a key style", "Use key_style='api' or key_style='snake'"
        )
    return str(value)
