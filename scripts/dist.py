#!/usr/bin/env python3
"""``make dist``: check the built sdist and wheel, then run the wheel in a clean virtualenv.

Two steps, each run by ``make dist`` (see docs/packaging.md):

``contents DIST_DIR``
    With any Python: the wheel holds exactly the package's modules (every ``.py`` file under
    ``airflow_provider_cfbilling/`` in the source tree, the emulator included), ``py.typed`` and its
    ``.dist-info``, and nothing else (no tests, docs or docs build output, example DAGs, caches,
    editor or merge leftovers); its metadata names the distribution, the version, the three
    runtime dependencies and the provider entry point. The sdist holds the sources without
    virtualenvs, caches, build output or local run data.

``smoke [--workdir DIR]``
    Run by the **clean virtualenv's** Python (``apache-airflow`` pinned by constraints.txt plus the
    built wheel, nothing else): checks that the provider is the installed wheel, not the source
    tree, and that Airflow lists it, then runs the daily example DAG against the emulator
    (``python -m airflow_provider_cfbilling.emulator`` from the wheel) with ``airflow dags test``,
    reusing ``scripts/demo.py``'s emulator launcher and Airflow helpers, and reads the landed
    partition and its manifest back.

Standard library only (the smoke step runs where nothing but Airflow and the wheel is installed).
"""

from __future__ import annotations

import argparse
import datetime as dt
import email.parser
import json
import os
import re
import shutil
import signal
import site
import sys
import tarfile
import time
import zipfile
from pathlib import Path, PurePosixPath
from types import ModuleType
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "airflow_provider_cfbilling"
DISTRIBUTION = "airflow-provider-cfbilling"
RUNTIME_DEPENDENCIES = {"apache-airflow", "httpx", "pendulum"}
ENTRY_POINT = f"provider_info = {PACKAGE}.get_provider_info:get_provider_info"

# Path parts or suffixes that must never be in a wheel or an sdist.
LEFTOVER_PARTS = {
    "__pycache__",
    ".git",
    ".venv",
    ".venvs",
    ".demo",
    ".airflow-test",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
    "_build",
    "dist",
    "build",
    "node_modules",
    ".ipynb_checkpoints",
}
LEFTOVER_SUFFIXES = (".pyc", ".pyo", ".orig", ".rej", ".swp", "~", ".bak", ".DS_Store", ".log", ".db", ".sqlite")
# What the sdist holds at its top level: what builds the wheel, and the changelog (MANIFEST.in).
SDIST_TOP_LEVEL = {
    "PKG-INFO",
    "README.md",
    "LICENSE",
    "CHANGELOG.md",
    "MANIFEST.in",
    "pyproject.toml",
    "setup.cfg",
    PACKAGE,
    f"{PACKAGE}.egg-info",
}
# Top-level folders of the repository that belong to development, not to the wheel.
NOT_IN_WHEEL = {"tests", "docs", "example_dags", "bench", "deploy", "scripts", "constraints", ".ci"}


class DistError(RuntimeError):
    """The distribution is not what it should be; the message says what and where."""


def say(message: str) -> None:
    print(f"==> {message}", flush=True)


def version() -> str:
    text = (REPO_ROOT / PACKAGE / "__init__.py").read_text(encoding="utf-8")
    match = re.search(r'^__version__ = "([^"]+)"', text, re.M)
    if not match:
        raise DistError(f"no __version__ in {PACKAGE}/__init__.py")
    return match[1]


def leftovers(names: list[str]) -> list[str]:
    found = []
    for name in names:
        parts = PurePosixPath(name).parts
        if LEFTOVER_PARTS & set(parts) or name.endswith(LEFTOVER_SUFFIXES):
            found.append(name)
    return found


def source_modules() -> set[str]:
    """Every module of the package in the source tree, as wheel paths."""
    package = REPO_ROOT / PACKAGE
    return {path.relative_to(REPO_ROOT).as_posix() for path in package.rglob("*.py") if "__pycache__" not in path.parts}


def check_wheel(wheel: Path, expected_version: str) -> list[str]:
    problems: list[str] = []
    dist_info = f"{PACKAGE}-{expected_version}.dist-info"
    with zipfile.ZipFile(wheel) as archive:
        names = [name for name in archive.namelist() if not name.endswith("/")]
        metadata = email.parser.Parser().parsestr(archive.read(f"{dist_info}/METADATA").decode())
        entry_points = archive.read(f"{dist_info}/entry_points.txt").decode()

    outside = [name for name in names if not (name.startswith(f"{PACKAGE}/") or name.startswith(f"{dist_info}/"))]
    if outside:
        problems.append(f"files outside {PACKAGE}/ and {dist_info}/: {outside}")
    development = [name for name in names if PurePosixPath(name).parts[0] in NOT_IN_WHEEL]
    development += [name for name in names if set(PurePosixPath(name).parts[1:-1]) & {"tests", "docs"}]
    if development:
        problems.append(f"development files: {sorted(set(development))}")
    if leftovers(names):
        problems.append(f"leftovers (caches, build output, editor or merge files): {leftovers(names)}")

    package_files = {name for name in names if name.startswith(f"{PACKAGE}/")}
    modules = {name for name in package_files if name.endswith(".py")}
    wanted = source_modules()
    if modules != wanted:
        problems.append(
            f"modules differ from the source tree: missing {sorted(wanted - modules)}, extra {sorted(modules - wanted)}"
        )
    data = package_files - modules
    if data != {f"{PACKAGE}/py.typed"}:
        problems.append(f"package data should be py.typed alone, is {sorted(data)}")
    if f"{PACKAGE}/emulator/__main__.py" not in modules:
        problems.append("the emulator (python -m airflow_provider_cfbilling.emulator) is missing")

    if metadata["Name"] != DISTRIBUTION or metadata["Version"] != expected_version:
        problems.append(f"METADATA names {metadata['Name']} {metadata['Version']}")
    if metadata["Requires-Python"] != ">=3.10":
        problems.append(f"Requires-Python is {metadata['Requires-Python']!r}")
    if f"{dist_info}/licenses/LICENSE" not in names:
        problems.append("the LICENSE file is not in the wheel")
    if metadata.get("License-Expression") != "Apache-2.0":
        problems.append(f"License-Expression is {metadata.get('License-Expression')!r}")
    unconditional = {
        re.split(r"[\s\[<>=!~;(]", requirement, maxsplit=1)[0].lower()
        for requirement in metadata.get_all("Requires-Dist") or []
        if "extra ==" not in requirement
    }
    if unconditional != RUNTIME_DEPENDENCIES:
        problems.append(f"runtime dependencies are {sorted(unconditional)}, not {sorted(RUNTIME_DEPENDENCIES)}")
    extras = set(metadata.get_all("Provides-Extra") or [])
    if not {"parquet", "sql"} <= extras:
        problems.append(f"extras {sorted(extras)} lack parquet or sql")
    if "[apache_airflow_provider]" not in entry_points or ENTRY_POINT not in entry_points:
        problems.append(f"entry point missing: {entry_points!r}")
    if not problems:
        say(
            f"{wheel.name}: {len(names)} files ({len(modules)} modules, the emulator's "
            f"{sum(1 for name in modules if '/emulator/' in name)} included), runtime dependencies "
            f"{', '.join(sorted(unconditional))}, extras {', '.join(sorted(extras))}"
        )
    return problems


def check_sdist(sdist: Path, expected_version: str) -> list[str]:
    problems: list[str] = []
    root = f"{PACKAGE}-{expected_version}"
    with tarfile.open(sdist) as archive:
        names = [member.name for member in archive.getmembers() if member.isfile()]
    outside = [name for name in names if not name.startswith(f"{root}/")]
    if outside:
        problems.append(f"files outside {root}/: {outside}")
    relative = [name.removeprefix(f"{root}/") for name in names]
    unexpected = sorted({PurePosixPath(name).parts[0] for name in relative} - SDIST_TOP_LEVEL)
    if unexpected:
        problems.append(f"unexpected at the top of the sdist: {unexpected} (MANIFEST.in says what goes in)")
    required_files = (
        "PKG-INFO",
        "pyproject.toml",
        "README.md",
        "LICENSE",
        f"{PACKAGE}/__init__.py",
        f"{PACKAGE}/py.typed",
    )
    for required in required_files:
        if required not in relative:
            problems.append(f"{required} is missing")
    if leftovers(relative):
        problems.append(f"leftovers (virtualenvs, caches, build output, local data): {leftovers(relative)}")
    modules = {name for name in relative if name.startswith(f"{PACKAGE}/") and name.endswith(".py")}
    if modules != source_modules():
        problems.append(f"modules differ from the source tree: {sorted(source_modules() ^ modules)}")
    if not problems:
        say(f"{sdist.name}: {len(names)} files, no leftovers")
    return problems


def contents(dist_dir: Path) -> int:
    expected_version = version()
    wheels = sorted(dist_dir.glob("*.whl"))
    sdists = sorted(dist_dir.glob("*.tar.gz"))
    problems: list[str] = []
    if [path.name for path in wheels] != [f"{PACKAGE}-{expected_version}-py3-none-any.whl"]:
        problems.append(f"expected one pure-Python wheel of {expected_version} in {dist_dir}, found {wheels}")
    if [path.name for path in sdists] != [f"{PACKAGE}-{expected_version}.tar.gz"]:
        problems.append(f"expected one sdist of {expected_version} in {dist_dir}, found {sdists}")
    if not problems:
        problems += check_wheel(wheels[0], expected_version)
        problems += check_sdist(sdists[0], expected_version)
    for problem in problems:
        print(f"dist: {problem}", file=sys.stderr)
    return 1 if problems else 0


# --------------------------------------------------------------------------------------------
# The clean virtualenv
# --------------------------------------------------------------------------------------------


def installed_from_wheel() -> str:
    """The provider must come from this interpreter's site-packages, at the source tree's version."""
    import importlib.metadata

    import airflow_provider_cfbilling

    location = Path(airflow_provider_cfbilling.__file__).resolve()
    site_packages = {Path(path).resolve() for path in site.getsitepackages()}
    if location.parent.parent not in site_packages or (REPO_ROOT / PACKAGE) in location.parents:
        raise DistError(f"{PACKAGE} is imported from {location}, not from {sys.prefix}'s site-packages")
    installed = importlib.metadata.version(DISTRIBUTION)
    if installed != version() or airflow_provider_cfbilling.__version__ != installed:
        raise DistError(f"installed {DISTRIBUTION} {installed} is not the source tree's {version()}")
    direct_url = importlib.metadata.distribution(DISTRIBUTION).read_text("direct_url.json") or "{}"
    if json.loads(direct_url).get("dir_info", {}).get("editable"):
        raise DistError(f"{DISTRIBUTION} is an editable install, not the wheel")
    test_only = [
        name for name in ("pytest", "moto", "respx", "pyarrow", "cloudflare") if _installed(importlib.metadata, name)
    ]
    if test_only:
        raise DistError(f"the clean virtualenv holds test dependencies: {test_only}")
    return f"{DISTRIBUTION} {installed} from {location.parent}"


def _installed(metadata: object, name: str) -> bool:
    try:
        metadata.version(name)  # type: ignore[attr-defined]
    except Exception:
        return False
    return True


def smoke(workdir: Path) -> int:
    started = time.monotonic()
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    # `python -m` puts the working directory first on sys.path: run everything from the workdir, so
    # the emulator and Airflow import the wheel, never the source tree; PYTHONPATH goes for the same reason.
    os.chdir(workdir)
    os.environ.pop("PYTHONPATH", None)
    sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != REPO_ROOT]
    try:
        say(f"Provider: {installed_from_wheel()}")
    except DistError as error:
        print(f"dist smoke failed: {error}", file=sys.stderr)
        return 1
    import demo  # scripts/demo.py, beside this script: its emulator launcher and Airflow helpers

    # A SIGTERM (a CI timeout, a killed `make`) unwinds like Ctrl-C, so the emulator is stopped.
    signal.signal(signal.SIGTERM, demo._interrupt)
    try:
        records = run_daily_example(demo, workdir)
    except (DistError, demo.DemoError) as error:
        print(f"dist smoke failed: {error}", file=sys.stderr)
        return 1
    say(
        f"The wheel ran {demo.DAG_ID}: {len(records)} records for {demo.DEMO_DAY} in {time.monotonic() - started:.0f} s"
    )
    return 0


def run_daily_example(demo: ModuleType, workdir: Path) -> list[dict[str, Any]]:
    """The demo's daily DAG run, from the clean virtualenv; the landed records (checked against their manifest)."""
    day = demo.DEMO_DAY
    airflow_home, lake = workdir / "airflow-home", workdir / "lake"
    for directory in (airflow_home, lake):
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
    log = workdir / "airflow.log"
    log.write_text("")
    # The emulator publishes a day 6 h after it ends: noon of the next day is past that (as in the demo).
    clock = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(12), tzinfo=dt.timezone.utc)
    processes = demo.supervisor(workdir)  # its logs go to workdir: the Airflow commands append to airflow.log
    with demo.running_emulator(clock, workdir / "emulator.log", processes=processes) as (base_url, pid):
        say(f"Emulator from the wheel (pid {pid}) on {base_url}")
        env = demo.airflow_environment(airflow_home, base_url, lake, workdir / "cloudflare_usage.db")
        demo.airflow(processes, ["providers", "list"], env, log)
        if DISTRIBUTION not in log.read_text(errors="replace"):
            raise DistError(f"'airflow providers list' does not list {DISTRIBUTION} (log: {log})")
        say(f"airflow providers list: {DISTRIBUTION} registered")
        demo.airflow(processes, ["db", "migrate"], env, log)
        run_date = (day + dt.timedelta(days=1)).isoformat()
        say(f"airflow dags test {demo.DAG_ID} {run_date} (Airflow's output: {log})")
        demo.airflow(processes, ["dags", "test", demo.DAG_ID, run_date], env, log)
    partition = lake / "usage_v2" / f"account_id={demo.ACCOUNT_ID}" / f"charge_date={day.isoformat()}"
    landed, manifest = partition / "usage.jsonl", partition / "_usage.jsonl.manifest.json"
    if not landed.is_file() or not manifest.is_file():
        raise DistError(f"the run succeeded but {landed} or its manifest is missing (log: {log})")
    records: list[dict[str, Any]] = demo.read_jsonl(landed)
    written = json.loads(manifest.read_text(encoding="utf-8"))
    if not records or written["records"] != len(records) or written["generator_version"] != version():
        raise DistError(f"{landed}: {len(records)} records, manifest {written}")
    print()
    print(demo.usage_table(records))
    print()
    return records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("contents", help="check the wheel's and the sdist's files and metadata")
    check.add_argument("dist_dir", type=Path)
    run = commands.add_parser("smoke", help="in the clean virtualenv: run the daily example DAG from the wheel")
    run.add_argument("--workdir", type=Path, default=REPO_ROOT / "build" / "dist-smoke")
    args = parser.parse_args(argv)
    if args.command == "contents":
        return contents(args.dist_dir)
    return smoke(args.workdir)


if __name__ == "__main__":
    sys.exit(main())
