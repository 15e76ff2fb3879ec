"""The command line: start as a subprocess, read the ready line, use it, SIGTERM, clean exit."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from emulator_helpers import ACCOUNT, BEARER, FROZEN, usage_path

from airflow_provider_cfbilling.emulator import DEFAULT_TOKEN, Emulator, EmulatorClient
from airflow_provider_cfbilling.emulator.cli import (
    READY_LINE,
    build_emulator,
    build_parser,
    command,
    main,
    wait_for_ready_line,
)

READY = re.compile(r"^Cloudflare billing emulator listening on (http://127\.0\.0\.1:\d+/client/v4)$")


def start(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "airflow_provider_cfbilling.emulator", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def read_line(proc: subprocess.Popen[str], timeout: float = 20) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, "the emulator did not print its ready line in time"
    return proc.stdout.readline().rstrip("\n")


def test_cli_serves_until_sigterm() -> None:
    with start(
        "--port",
        "0",
        "--seed",
        "5",
        "--clock",
        "2026-01-10T12:00:00Z",
        "--to-inclusive",
        "--zones",
        "2",
        "--fault",
        "v2:nth=1:status=503",
        "--rate-limit",
        "1200/300/300",
        "--availability-delay-hours",
        "1",
    ) as proc:  # closes its pipes
        try:
            line = read_line(proc)
            match = READY.match(line)
            assert match, line
            base_url = match.group(1)
            with httpx.Client(base_url=base_url, headers=BEARER, timeout=10, verify=False) as http:
                window = {"from": "2026-01-09", "to": "2026-01-09"}
                assert http.get(usage_path("v2"), params=window).status_code == 503
                records = http.get(usage_path("v2"), params=window).json()["result"]
                assert {r["ChargePeriodStart"] for r in records} == {"2026-01-09T00:00:00Z"}  # to is inclusive
                assert len({r["x_ZoneId"] for r in records if r["x_ZoneId"]}) == 2
                with EmulatorClient(base_url, verify=False) as control:
                    assert control.health()["now"] == "2026-01-10T12:00:00Z"
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=10) == 0
            assert proc.stdout is not None
            assert proc.stdout.read() == ""  # exactly one line
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_cli_sigint_also_exits_cleanly() -> None:
    with start("--port", "0") as proc:  # closes its pipes
        try:
            assert READY.match(read_line(proc))
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=10) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_cli_rejects_bad_arguments() -> None:
    for args in (["--fault", "nowhere:status=500"], ["--rate-limit", "lots"], ["--host", "0.0.0.0"]):
        proc = start(*args)
        _, stderr = proc.communicate(timeout=20)
        assert proc.returncode == 2, args
        assert "error" in stderr


def test_cli_options_build_the_emulator(tmp_path: Path) -> None:
    credentials = tmp_path / "credentials.json"
    credentials.write_text(
        json.dumps({"tokens": [{"value": "t" * 40, "owner": "user", "billing_read": False}]}), encoding="utf-8"
    )
    args = build_parser().parse_args(
        [
            "--credentials-file",
            str(credentials),
            "--rate-limit",
            "10/60/30",
            "--rate-limit-http-date",
            "--populate-costs",
            "--extra-fields",
            "--ignore-metric-filter",
            "--scale",
            "2",
            "--clock",
            "2026-01-10T12:00:00Z",
            "--clock-running",
        ]
    )
    emu = build_emulator(args)
    assert emu.credentials.find_token("t" * 40) is not None
    assert emu.credentials.find_token(DEFAULT_TOKEN) is None  # include_defaults was not asked for
    assert emu.settings()["rate_limit"]["retry_after_http_date"] is True
    assert (emu.populate_costs, emu.extra_fields, emu.ignore_metric_filter, emu.scale) == (True, True, True, 2)
    assert emu.clock.mode == "offset"


def test_command_and_ready_line_helpers_start_the_cli() -> None:
    """What ``make demo`` and ``make test-deploy`` use: the argv and the ready-line reader."""
    argv = command("--clock", "2026-01-10T12:00:00Z")
    assert argv[:5] == [sys.executable, "-m", "airflow_provider_cfbilling.emulator", "--port", "0"]
    with subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    ) as proc:  # closes its pipes
        try:
            assert proc.stdout is not None
            base_url = wait_for_ready_line(proc.stdout, timeout=20)
            assert READY.match(READY_LINE.format(base_url=base_url))
            with EmulatorClient(base_url) as control:
                assert control.health()["now"] == "2026-01-10T12:00:00Z"
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def test_ready_line_reader_skips_other_lines_and_reports_eof_and_timeout() -> None:
    def pipe_with(text: str, *, close: bool) -> tuple[Any, Any]:
        read_fd, write_fd = os.pipe()
        writer = os.fdopen(write_fd, "w")
        writer.write(text)
        writer.flush()
        if close:
            writer.close()
        return os.fdopen(read_fd), writer

    reader, _ = pipe_with(f"warming up\n{READY_LINE.format(base_url='http://127.0.0.1:1/client/v4')}\n", close=True)
    with reader:
        assert wait_for_ready_line(reader, timeout=5) == "http://127.0.0.1:1/client/v4"

    reader, _ = pipe_with("Traceback (most recent call last):\n", close=True)
    with reader, pytest.raises(EOFError):
        wait_for_ready_line(reader, timeout=5)

    reader, writer = pipe_with("still starting\n", close=False)
    try:
        with pytest.raises(TimeoutError):
            wait_for_ready_line(reader, timeout=0.3)
    finally:
        writer.close()
        reader.close()


def test_cli_restates_days_and_shuffles_records() -> None:
    with start(
        "--port",
        "0",
        "--clock",
        "2026-01-10T12:00:00Z",
        "--restate",
        f"{ACCOUNT}:2026-01-05:1.5:2",
        "--restate",
        f"{ACCOUNT}:2026-01-05::1",
        "--shuffle-records",
    ) as proc:  # closes its pipes
        try:
            match = READY.match(read_line(proc))
            assert match
            base_url = match.group(1)
            with EmulatorClient(base_url) as control:
                assert control.restatements() == [
                    {"account_id": ACCOUNT, "day": "2026-01-05", "factor": 1.65, "corrections": 3, "revisions": 2}
                ]
                assert control.config()["shuffle_records"] is True
                reference = Emulator(clock=FROZEN)
                reference.restate(ACCOUNT, "2026-01-05", factor=1.5, corrections=2)
                reference.restate(ACCOUNT, "2026-01-05", corrections=1)
                expected = reference.expected_records(ACCOUNT, "2026-01-05")
                window = {"from": "2026-01-05", "to": "2026-01-06"}
                with httpx.Client(base_url=base_url, headers=BEARER, timeout=10) as http:
                    served = http.get(usage_path("v2"), params=window).json()["result"]
                assert served != expected  # shuffled
                assert sorted(map(json.dumps, served)) == sorted(map(json.dumps, expected))
                assert control.expected(account_id=ACCOUNT, day="2026-01-05") == expected  # canonical order
        finally:
            proc.terminate()
            proc.wait(timeout=10)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nope:2026-01-05", "32 lowercase hex"),
        (f"{ACCOUNT}:2026-02-30", "not a valid calendar date"),
        (f"{ACCOUNT}:2026-01-05:-1", "positive"),
        (f"{ACCOUNT}", "ACCOUNT:DAY[:FACTOR[:CORRECTIONS]]"),
        (f"{ACCOUNT}:2026-01-05:1:0", "change something"),
    ],
)
def test_cli_rejects_bad_restatements(spec: str, message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--restate", spec])
    assert exited.value.code == 2
    assert message in capsys.readouterr().err
