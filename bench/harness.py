"""What the benchmark scripts share: the emulator process, the sizes, the window and the machine.

The emulator always runs as its own process (its CLI), so the CPU it spends generating and
sending records is never counted in the measured client process. Every landing run uses the
same window, one calendar month (the longest the API allows in one v2 request); the size of
the response is chosen with the emulator's ``--zones`` knob (records grow with zones x metrics
x days).
"""

from __future__ import annotations

import json
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
PYTHON = sys.executable

# January 2026: 31 days, the longest window one v2 request may cover. The SDK and plain httpx send
# one request; ours sends two, because it keeps every request within 31 days under either reading
# of `to` (docs/performance.md).
PERIOD_START = "2026-01-01"
PERIOD_END = "2026-02-01"
# Late enough that every day of the window is available (the default delay is 6 hours).
CLOCK = "2026-02-10T12:00:00Z"
SEED = 0

# Records in the window for a zone count (seed 0, the window above): 313 + 125.49 x zones.
# The named sizes are the zone counts nearest to 10k / 100k / 1M records.
_BASE_RECORDS = 313
_RECORDS_PER_ZONE = 125.49
NAMED_SIZES = {"10k": 77, "100k": 788, "1m": 7903}
DEFAULT_SIZES = ("10k", "100k", "1m")
QUICK_SIZES = ("10k", "100k")


def enter_task_process_state() -> None:
    """Put this process where Airflow's task runner has it when it calls ``execute``.

    On Linux the supervisor forks the task's process (``supervisor._fork_main``), so the process
    starts with the supervisor's and the runner's modules imported, and the runner loads the
    plugins before ``execute`` (``get_template_context`` calls ``integrate_macros_plugins()``).
    Measuring ``execute()`` in a bare interpreter instead charges a task for imports and a plugin
    load that no task pays inside ``execute``. Airflow 3 only (the benchmark's environment).
    """
    import airflow.sdk.execution_time.supervisor
    import airflow.sdk.execution_time.task_runner  # noqa: F401
    from airflow.sdk.plugins_manager import integrate_macros_plugins

    integrate_macros_plugins()


_READY = re.compile(r"listening on (?P<url>http://\S+)")


@dataclass(frozen=True)
class Size:
    """One benchmark size: a label, the emulator's zone count and the records it gives (about)."""

    label: str
    zones: int

    @property
    def approx_records(self) -> int:
        return round(_BASE_RECORDS + _RECORDS_PER_ZONE * self.zones)


def parse_size(text: str) -> Size:
    """``10k``, ``100k``, ``1m`` (calibrated zone counts), or any count such as ``250k`` or ``50000``."""
    label = text.strip().lower()
    if label in NAMED_SIZES:
        return Size(label, NAMED_SIZES[label])
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([km]?)", label)
    if not match:
        raise ValueError(f"size {text!r}: use e.g. 10k, 100k, 1m or a record count")
    records = float(match[1]) * {"": 1, "k": 1_000, "m": 1_000_000}[match[2]]
    zones = max(1, round((records - _BASE_RECORDS) / _RECORDS_PER_ZONE))
    return Size(label, zones)


def credentials() -> tuple[str, str]:
    """The emulator's default API token and account id."""
    from airflow_provider_cfbilling.emulator import DEFAULT_ACCOUNT_ID, DEFAULT_TOKEN

    return DEFAULT_TOKEN, DEFAULT_ACCOUNT_ID


def connection_env(base_url: str) -> dict[str, str]:
    """Environment for a child that runs our operator against the emulator at ``base_url``."""
    token, account = credentials()
    conn = {"conn_type": "cloudflare", "host": base_url, "password": token, "extra": {"account_id": account}}
    return {"AIRFLOW_CONN_CLOUDFLARE_DEFAULT": json.dumps(conn)}


def child_env(airflow_home: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """A clean environment for measured children: own AIRFLOW_HOME, no inherited connection."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("AIRFLOW_CONN_")}
    env["AIRFLOW_HOME"] = airflow_home
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTHONWARNINGS"] = "ignore"
    env.update(extra or {})
    return env


@contextmanager
def emulator_process(zones: int, *, scale: int = 1) -> Iterator[str]:
    """Run ``python -m airflow_provider_cfbilling.emulator`` with ``zones``; yield its base URL."""
    command = [
        PYTHON,
        "-m",
        "airflow_provider_cfbilling.emulator",
        "--port",
        "0",
        "--seed",
        str(SEED),
        "--clock",
        CLOCK,
        "--zones",
        str(zones),
        "--scale",
        str(scale),
        "--handler-timeout",
        "600",
    ]
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors, text=True, cwd=REPO)
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            match = _READY.search(line)
            if not match:
                process.wait(5)
                errors.seek(0)
                raise RuntimeError(f"the emulator did not start: {line!r} {errors.read().decode()[-2000:]}")
            yield match["url"]
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def _first_line(path: str, prefix: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                if line.startswith(prefix):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine() -> dict[str, str]:
    """What the numbers were measured on."""
    memory_kb = _first_line("/proc/meminfo", "MemTotal")
    return {
        "nproc": str(os.cpu_count()),
        "cpu": _first_line("/proc/cpuinfo", "model name") or platform.processor() or "unknown",
        "ram": f"{int(memory_kb.split()[0]) / 1024 / 1024:.1f} GiB" if memory_kb else "unknown",
        "kernel": platform.release(),
        "python": platform.python_version(),
        "packages": ", ".join(
            f"{name} {_version(name)}"
            for name in (
                "airflow-provider-cfbilling",
                "apache-airflow",
                "apache-airflow-providers-http",
                "cloudflare",
                "pydantic",
                "httpx",
            )
        ),
    }
