"""Command line for the emulator: ``python -m airflow_provider_cfbilling.emulator [options]``.

Prints exactly one line, ``Cloudflare billing emulator listening on http://127.0.0.1:PORT/client/v4``,
once it accepts connections, then serves until SIGINT or SIGTERM and exits 0.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import queue
import signal
import sys
import threading
import time
from collections.abc import Sequence
from datetime import timedelta
from types import FrameType
from typing import IO

from airflow_provider_cfbilling.emulator.clock import parse_instant
from airflow_provider_cfbilling.emulator.core import Emulator
from airflow_provider_cfbilling.emulator.credentials import Credentials
from airflow_provider_cfbilling.emulator.faults import RateLimitConfig, fault_from_any
from airflow_provider_cfbilling.emulator.organizations import parse_organization_spec
from airflow_provider_cfbilling.emulator.restatements import Restatement

READY_PREFIX = "Cloudflare billing emulator listening on "
READY_LINE = READY_PREFIX + "{base_url}"


def command(*options: str) -> list[str]:
    """The argv that runs this command line with the current interpreter on a free loopback port
    (``--port 0``), plus ``options``; read the base URL with :func:`wait_for_ready_line`."""
    return [sys.executable, "-m", "airflow_provider_cfbilling.emulator", "--port", "0", *options]


def wait_for_ready_line(stdout: IO[str], timeout: float) -> str:
    """Read a started emulator's standard output (text mode) until its ready line; return the base URL.

    Raises :class:`TimeoutError` when no ready line came within ``timeout`` seconds, and
    :class:`EOFError` when the output ended first (the process exited). A daemon thread reads the
    pipe, so the timeout holds even while the process prints nothing.
    """
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        with contextlib.suppress(ValueError, OSError):  # the pipe closed under us
            for line in stdout:
                lines.put(line)
        lines.put("")  # end of output

    threading.Thread(target=pump, name="emulator-ready-line", daemon=True).start()
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"the emulator printed no ready line within {timeout:g} s")
        try:
            line = lines.get(timeout=remaining)
        except queue.Empty:
            continue
        if not line:
            raise EOFError("the emulator's output ended before its ready line")
        if line.startswith(READY_PREFIX):
            return line[len(READY_PREFIX) :].strip()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_cfbilling.emulator",
        description="A local emulator of Cloudflare's billing API (PayGo, v2 and organization usage, "
        "billing profile, subscriptions, billing history).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="loopback only: 127.0.0.1 or localhost")
    parser.add_argument("--port", type=int, default=0, help="port to listen on; 0 picks a free one (default)")
    parser.add_argument("--seed", type=int, default=0, help="data seed (default 0)")
    parser.add_argument("--clock", help="freeze the emulator clock at this instant, e.g. 2026-01-10T12:00:00Z")
    parser.add_argument("--clock-running", action="store_true", help="let the clock tick on from --clock")
    parser.add_argument("--to-inclusive", action="store_true", help="treat 'to' as inclusive ([from, to])")
    parser.add_argument("--populate-costs", action="store_true", help="fill the v2 cost and pricing fields")
    parser.add_argument("--extra-fields", action="store_true", help="add unknown fields such as x_FutureField")
    parser.add_argument("--ignore-metric-filter", action="store_true", help="v2 ignores metric / metric_id")
    parser.add_argument(
        "--shuffle-records",
        action="store_true",
        help="answer each usage request with its records in another (deterministic) order",
    )
    parser.add_argument("--zones", type=int, default=3, help="zones per account (default 3)")
    parser.add_argument("--scale", type=int, default=1, help="multiplies the zone count (default 1)")
    parser.add_argument(
        "--availability-delay-hours",
        type=float,
        default=6.0,
        help="hours after the end of a UTC day until its usage appears (default 6)",
    )
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="SPEC",
        help="arm a fault, e.g. 'v2:nth=3:status=503' (repeatable; syntax in docs/emulator.md)",
    )
    parser.add_argument(
        "--restate",
        action="append",
        default=[],
        metavar="ACCOUNT:DAY[:FACTOR[:CORRECTIONS]]",
        help="restate a day from the start, e.g. '023e105f4ecef8ad9ca31a8372d0c353:2026-01-08:1.25:2' "
        "(factor default 1.1, corrections default 1; repeatable, the same day again stacks)",
    )
    parser.add_argument(
        "--organization",
        action="append",
        default=[],
        metavar="ORGANIZATION_ID:ACCOUNT[,ACCOUNT...]",
        help="define an organization and its accounts (repeatable; laid over the default organization, "
        "whose id given here replaces its accounts)",
    )
    parser.add_argument(
        "--history-items",
        type=int,
        default=25,
        help="items in each account's billing history (0..1000, default 25)",
    )
    parser.add_argument(
        "--history-repeat-pages",
        action="store_true",
        help="billing history: every page number answers the first page (never an empty page)",
    )
    parser.add_argument(
        "--history-hide-page-count",
        action="store_true",
        help="billing history: leave total_count and total_pages out of result_info",
    )
    parser.add_argument("--rate-limit", metavar="MAX/WINDOW/BLOCK", help="e.g. 1200/300/300 (seconds)")
    parser.add_argument(
        "--rate-limit-http-date", action="store_true", help="send the block's Retry-After as an HTTP date"
    )
    parser.add_argument(
        "--credentials-file",
        help="JSON file {'tokens': [...], 'global_keys': [...], 'include_defaults': true} (default: built-ins)",
    )
    parser.add_argument("--handler-timeout", type=float, default=30.0, help="idle connection timeout, seconds")
    return parser


def build_emulator(args: argparse.Namespace) -> Emulator:
    """An (unstarted) emulator configured from parsed arguments; ValueError on bad values."""
    credentials = None
    if args.credentials_file:
        with open(args.credentials_file, encoding="utf-8") as handle:
            credentials = Credentials.from_dict(json.load(handle))
    rate_limit = None
    if args.rate_limit:
        config = RateLimitConfig.parse(args.rate_limit)
        rate_limit = RateLimitConfig(
            config.max_requests, config.window_seconds, config.block_seconds, args.rate_limit_http_date
        )
    organizations: dict[str, tuple[str, ...]] = {}
    for spec in args.organization:
        organization_id, accounts = parse_organization_spec(spec)
        if organization_id in organizations:
            raise ValueError(f"--organization {organization_id} is given twice")
        organizations[organization_id] = accounts
    return Emulator(
        seed=args.seed,
        availability_delay=timedelta(hours=args.availability_delay_hours),
        clock=parse_instant(args.clock) if args.clock else None,
        clock_running=args.clock_running,
        to_inclusive=args.to_inclusive,
        populate_costs=args.populate_costs,
        extra_fields=args.extra_fields,
        zones=args.zones,
        scale=args.scale,
        ignore_metric_filter=args.ignore_metric_filter,
        shuffle_records=args.shuffle_records,
        history_items=args.history_items,
        history_repeat_pages=args.history_repeat_pages,
        history_hide_page_count=args.history_hide_page_count,
        organizations=organizations,
        credentials=credentials,
        faults=[fault_from_any(spec) for spec in args.fault],
        rate_limit=rate_limit,
        restatements=[Restatement.parse(spec) for spec in args.restate],
        host=args.host,
        port=args.port,
        handler_timeout=args.handler_timeout,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        emulator = build_emulator(args)
    except (ValueError, OSError) as error:
        parser.error(str(error))
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            emulator.start()
        except OSError as error:
            print(f"cannot listen on {args.host}:{args.port}: {error}", file=sys.stderr)
            return 1
        print(READY_LINE.format(base_url=emulator.base_url), flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        emulator.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
