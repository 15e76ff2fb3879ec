"""Fixtures for the emulator's own tests: a started emulator on a frozen clock and an httpx client."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from emulator_helpers import BEARER, FROZEN

from airflow_provider_cfbilling.emulator import Emulator


@pytest.fixture(autouse=True)
def no_leftover_threads() -> Iterator[None]:
    """Every test must leave no emulator thread running behind it."""
    yield
    deadline = time.monotonic() + 5
    alive: list[str] = []
    while time.monotonic() < deadline:
        alive = [t.name for t in threading.enumerate() if t.name.startswith("cfbilling-emulator")]
        if not alive:
            return
        time.sleep(0.02)
    pytest.fail(f"emulator threads left running: {alive}")


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator(clock=FROZEN) as emulator:
        yield emulator


@pytest.fixture
def client(emu: Emulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=emu.base_url, headers=BEARER, timeout=10, verify=False) as http:
        yield http
