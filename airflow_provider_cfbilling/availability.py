"""Whether a day's usage is available, shared by the sensor and its trigger.

The count that decides it (:func:`count_records_on_day`), which errors waiting can cure
(:func:`is_transient`) and which fail the task at once (:func:`is_permanent`), and the trigger's
``error`` event both ways: built from an error in the triggerer (:func:`error_event_payload`) and
raised again, as the same class with the same message, in the worker (:func:`error_from_event`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from typing import Any

from airflow_provider_cfbilling import records as record_tools
from airflow_provider_cfbilling.exceptions import (
    CloudflareAPIError,
    CloudflareAuthError,
    CloudflareInputError,
    CloudflareNotFoundError,
    CloudflarePermanentError,
    CloudflarePermissionError,
    CloudflareRateLimitError,
    CloudflareRequestError,
    CloudflareServerError,
    retryable_status,
)
from airflow_provider_cfbilling.version_compat import AirflowException

CHARGE_PERIOD_START = record_tools.CHARGE_PERIOD_START
METRIC_ID = record_tools.METRIC_ID
# The classes an error event of the trigger is raised as, by its ``error_type``.
PERMANENT_ERRORS: dict[str, type[CloudflarePermanentError]] = {
    cls.__name__: cls
    for cls in (CloudflareAuthError, CloudflarePermissionError, CloudflareNotFoundError, CloudflareRequestError)
}
TRANSIENT_ERRORS: dict[str, type[CloudflareAPIError]] = {
    cls.__name__: cls for cls in (CloudflareRateLimitError, CloudflareServerError)
}


def is_transient(error: BaseException) -> bool:
    """Whether waiting (and asking again later) can cure ``error``: the provider's errors say so
    themselves (``retryable``).

    Rate limits, 5xx, 408/409, network errors, malformed bodies and a 200 with ``success: false``
    are transient. 3xx and other 4xx answers (bad parameters, bad credentials, missing Billing
    Read, unknown route) and bad input are permanent: no amount of waiting fixes them. Any other
    exception (a bug, not an answer) is not transient either.
    """
    return isinstance(error, CloudflareAPIError) and error.retryable


def is_permanent(error: BaseException) -> bool:
    """Whether ``error`` is one of the provider's errors that no retry can cure (bad input, or an
    answer that asking again will not change): the task must fail without Airflow retries."""
    return isinstance(error, (CloudflareAPIError, CloudflareInputError)) and not error.retryable


def count_records_on_day(records: Iterable[dict[str, Any]], day: dt.date, metric: str | None = None) -> int:
    """How many records have ``ChargePeriodStart`` on ``day`` (UTC) and, if given, the metric.

    The request's ``to`` may be read inclusively by the server and PayGo requests may start
    earlier (at a billing-cycle anchor day), so records of other days are expected and skipped;
    the metric is checked here too because not every server version honours the filter.
    """
    count = 0
    parse = record_tools.parse_timestamp
    for record in records:
        value = record.get(CHARGE_PERIOD_START)
        if value is None:
            continue
        try:
            if parse(value).date() != day:
                continue
        except ValueError:
            continue
        if metric is not None and record.get(METRIC_ID) != metric:
            continue
        count += 1
    return count


def error_event_payload(
    error: BaseException, *, day: str, account_id: str, redact: Callable[[str], str] = str
) -> dict[str, Any]:
    """The small ``error`` event for ``error``; ``redact`` removes the connection's credentials.

    ``permanent`` tells the sensor to fail without Airflow retries. The error's parts come along
    (redacted) so the sensor can raise the same exception class with the same message: an API
    error's ``summary``, ``messages`` and ``endpoint``; bad input's ``parameter``, ``problem`` and
    ``fix``.
    """
    payload: dict[str, Any] = {
        "status": "error",
        "message": redact(str(error)),
        "http_status": None,
        "codes": [],
        "error_type": type(error).__name__,
        "permanent": is_permanent(error),
        "day": day,
        "account_id": account_id,
    }
    if isinstance(error, CloudflareAPIError):
        payload.update(
            http_status=error.status,
            codes=list(error.codes),
            summary=redact(error.summary),
            messages=[redact(message) for message in error.messages],
            endpoint=redact(error.endpoint),
        )
    elif isinstance(error, CloudflareInputError):
        payload.update(parameter=error.parameter, problem=redact(error.problem), fix=redact(error.fix))
    return payload


def error_from_event(event: dict[str, Any]) -> Exception:
    """The exception for the trigger's ``error`` event: the permanent error it met, of the same
    class and message, or ``AirflowException`` for anything else (Airflow's retries apply)."""
    error_type = str(event.get("error_type"))
    http_status = event.get("http_status")
    permanent = event.get("permanent")
    if permanent is None:  # an event of a trigger from before the field existed
        permanent = (
            error_type in PERMANENT_ERRORS
            or error_type == CloudflareInputError.__name__
            or (http_status is not None and not retryable_status(http_status))
        )
    context = f"Waiting for Cloudflare usage of {event.get('day')} failed"
    if permanent and error_type == CloudflareInputError.__name__:
        if event.get("parameter") is not None:
            return CloudflareInputError(
                str(event["parameter"]), str(event.get("problem")), f"{event.get('fix')} ({context})"
            )
        return CloudflareInputError("sensor", f"{context}: {event.get('message')}", "Fix the sensor's arguments")
    if permanent:
        error_class = PERMANENT_ERRORS.get(error_type, CloudflareRequestError)
        if event.get("summary") is None:  # an older trigger's event: its message is rendered already
            error = error_class(f"{context}: {event.get('message')}")
            error.status, error.codes = http_status, list(event.get("codes") or ())
            return error
        return error_class(
            f"{context}: {event['summary']}",
            status=http_status,
            codes=event.get("codes") or (),
            messages=event.get("messages") or (),
            endpoint=str(event.get("endpoint") or ""),
        )
    detail = f"HTTP {http_status}" if http_status is not None else error_type
    return AirflowException(f"{context} ({detail}): {event.get('message')}")
