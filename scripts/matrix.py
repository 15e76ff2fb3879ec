#!/usr/bin/env python3
"""Run the whole test suite against every supported Airflow x Python combination.

Each environment is a virtualenv under ``.venvs/<name>/`` with one Airflow release, the provider
installed editable and its test dependencies. When ``constraints/airflow-<airflow>-py<python>.txt``
exists the install is pinned to it (fast and reproducible); otherwise pip resolves from the few
pins below, and ``--freeze`` writes that file from ``pip freeze`` once the suite passed.

    python3 scripts/matrix.py                  # install what changed, test every environment
    python3 scripts/matrix.py -j 2             # two environments at a time
    python3 scripts/matrix.py --only af2.11-py3.11 af3.0-py3.11 -- -x tests/hooks
    python3 scripts/matrix.py --freeze         # record the working pins after a green run
    python3 scripts/matrix.py --list

Logs: ``.venvs/<name>/logs/{install,test}.log``. Exit status 1 if any environment failed.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VENVS = REPO / ".venvs"
CONSTRAINTS = REPO / "constraints"


@dataclass(frozen=True)
class Environment:
    """One Airflow release on one Python.

    :param pins: extra requirements that make this release resolve and work (found by hand:
        Airflow's own constraint files are what upstream uses for the same purpose).
    :param test_overrides: test requirements replaced by name (``pyproject``'s test extra cannot
        be used as is, e.g. a provider floor above what this Airflow supports).
    :param known_failures: test ids that cannot pass on this release because of an Airflow bug, each
        with the reason (docs/compatibility.md); deselected, and named with the reason in the output.
    :param suite_minutes: about how long the suite takes here (docs/compatibility.md): the longest
        start first, so that two at a time finish together instead of one long run at the end.
    """

    airflow: str
    python: str
    pins: tuple[str, ...] = ()
    test_overrides: dict[str, str] = field(default_factory=dict)
    why: str = ""
    known_failures: dict[str, str] = field(default_factory=dict)
    suite_minutes: float = 5

    @property
    def name(self) -> str:
        major_minor = ".".join(self.airflow.split(".")[:2])
        return f"af{major_minor}-py{self.python}"

    @property
    def constraints(self) -> Path:
        return CONSTRAINTS / f"airflow-{self.airflow}-py{self.python}.txt"

    @property
    def venv(self) -> Path:
        return VENVS / self.name


UNIVERSAL_PATHLIB_02 = "universal-pathlib<0.3"  # ObjectStoragePath before 3.1 breaks on upath 0.3
# Airflow before 3.2 sets an attribute on cryptography's MultiFernet, which cryptography 51 no longer allows:
# with a fernet_key configured no connection can be built (3.1 reports it as "isn't defined").
CRYPTOGRAPHY_50 = "cryptography<51"

ENVIRONMENTS = [
    Environment(
        "2.10.5",
        "3.11",
        suite_minutes=3,
        pins=(UNIVERSAL_PATHLIB_02, "apache-airflow-providers-standard"),
        # providers-amazon >= 9.20 (the test extra's floor) requires Airflow >= 2.11; 9.17 is the last for 2.10.
        test_overrides={"apache-airflow-providers-amazon": "apache-airflow-providers-amazon"},
        why="universal-pathlib 0.2 for airflow.io.path; the standard provider for EmptyOperator; older amazon",
    ),
    Environment(
        "2.11.2",
        "3.11",
        suite_minutes=3,
        pins=("apache-airflow-providers-standard",),
        why="the standard provider (EmptyOperator at the 3.x import path)",
    ),
    Environment(
        "3.0.6",
        "3.11",
        suite_minutes=4.5,
        pins=(UNIVERSAL_PATHLIB_02, "fastapi[standard]<0.117", "cadwyn<5.5", "apache-airflow-providers-fab"),
        why="universal-pathlib 0.2; FastAPI/Cadwyn of its time (newer ones reject the in-process Execution API "
        "calls of dag.test); FAB (wtforms) for the 3.0 connection form",
    ),
    Environment(
        "3.1.8",
        "3.11",
        suite_minutes=4.5,
        pins=(CRYPTOGRAPHY_50, "apache-airflow-providers-fab"),
        why="cryptography of its time (51 breaks its Fernet); FAB (wtforms) for the 3.1 connection form, "
        "built from the hook's WTForms fields as on 3.0",
    ),
    Environment(
        "3.2.2",
        "3.11",
        suite_minutes=4.5,
        pins=("fastapi<0.137",),
        why="FastAPI of its time (0.137+ fails the execution API's TITerminalStatePayload discriminator, so "
        "no task of a scheduler or API server can report its state)",
        known_failures={
            "tests/examples/test_demo.py::test_demo_runs_the_daily_dag_with_airflow_and_prints_the_usage_table": (
                "3.2.2's `airflow dags test` fails every task against its in-process Execution API "
                "(started without waiting, shut down when garbage collected; fixed in 3.3); the demo runs "
                "that command in a subprocess, where tests/harness.py's workaround cannot reach"
            ),
        },
    ),
    Environment("3.3.2", "3.11", suite_minutes=4.5),
    Environment("3.3.2", "3.10", suite_minutes=4.5),
    Environment("3.3.2", "3.13", suite_minutes=4.5),
]

_PRINT = threading.Lock()
_INSTALL = threading.Lock()  # one editable install at a time: they share the project's egg-info
_SUMMARY = re.compile(
    r"^=*\s*(?P<text>(\d+ (passed|failed|skipped|errors?|deselected|xfailed|xpassed)[, ]*)+.*?)\s*=*$"
)


def say(env: Environment, message: str) -> None:
    with _PRINT:
        print(f"[{env.name}] {message}", flush=True)


def find_python(version: str) -> str:
    """An interpreter for ``version``: $PYTHON_<major>_<minor>, pythonX.Y on PATH, or pyenv's."""
    override = os.environ.get(f"PYTHON_{version.replace('.', '_')}")
    candidates = [override] if override else []
    candidates.append(shutil.which(f"python{version}") or "")
    candidates += sorted(
        glob.glob(os.path.expanduser(f"~/.pyenv/versions/{version}.*/bin/python{version}")), reverse=True
    )
    for candidate in filter(None, candidates):
        probe = subprocess.run(
            [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=False,
        )
        if probe.returncode == 0 and probe.stdout.strip() == version:
            return candidate
    raise SystemExit(f"No Python {version} found (set PYTHON_{version.replace('.', '_')} to one)")


def test_requirements(env: Environment) -> list[str]:
    import tomllib  # Python 3.11+

    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    requirements = pyproject["project"]["optional-dependencies"]["test"]

    def name(requirement: str) -> str:
        return re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0].lower()

    return [env.test_overrides.get(name(requirement), requirement) for requirement in requirements]


def install_args(env: Environment) -> list[str]:
    args = [f"apache-airflow=={env.airflow}", *env.pins]
    if env.test_overrides:
        args += ["-e", str(REPO), *test_requirements(env)]
    else:
        args += ["-e", f"{REPO}[test]"]
    if env.constraints.exists():
        args = ["-c", str(env.constraints), *args]
    return args


def fingerprint(env: Environment) -> str:
    digest = hashlib.sha256(json.dumps(install_args(env)).encode())
    for path in (REPO / "pyproject.toml", env.constraints):
        if path.exists():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def run_logged(command: list[str], log: Path, extra_env: dict[str, str] | None = None) -> int:
    env = {**os.environ, **(extra_env or {})}
    with log.open("w") as out:
        out.write("$ " + " ".join(command) + "\n")
        out.flush()
        return subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, cwd=REPO, env=env, check=False).returncode


def install(env: Environment, force: bool) -> tuple[bool, float]:
    stamp = env.venv / ".matrix-installed"
    logs = env.venv / "logs"
    wanted = fingerprint(env)
    if not force and stamp.exists() and stamp.read_text() == wanted:
        say(env, "up to date")
        return True, 0.0
    with _INSTALL:
        started = time.monotonic()
        if not (env.venv / "bin" / "python").exists():
            subprocess.run([find_python(env.python), "-m", "venv", str(env.venv)], check=True)
        logs.mkdir(parents=True, exist_ok=True)
        pip = [str(env.venv / "bin" / "python"), "-m", "pip"]
        source = f"pinned by {env.constraints.relative_to(REPO)}" if env.constraints.exists() else "resolving"
        say(env, f"installing Airflow {env.airflow} on Python {env.python} ({source})")
        code = run_logged([*pip, "install", "--upgrade", "pip"], logs / "pip.log")
        if code == 0:
            code = run_logged([*pip, "install", *install_args(env)], logs / "install.log")
        elapsed = time.monotonic() - started
    if code != 0:
        say(env, f"INSTALL FAILED after {elapsed:.0f} s; see {logs / 'install.log'}:\n{tail(logs / 'install.log')}")
        return False, elapsed
    stamp.write_text(wanted)
    say(env, f"installed in {elapsed:.0f} s")
    return True, elapsed


def test(env: Environment, pytest_args: list[str]) -> tuple[bool, float, str]:
    log = env.venv / "logs" / "test.log"
    basetemp = Path(os.environ.get("TMPDIR", "/tmp")) / f"cfbilling-matrix-{env.name}"
    command = [
        str(env.venv / "bin" / "python"),
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        f"--basetemp={basetemp}",
        "-q",
        *[f"--deselect={test_id}" for test_id in env.known_failures],
        *pytest_args,
    ]
    for test_id, reason in env.known_failures.items():
        say(env, f"deselected {test_id}: {reason}")
    say(env, "testing")
    started = time.monotonic()
    bin_dir = str(env.venv / "bin")
    code = run_logged(command, log, {"PATH": os.pathsep.join([bin_dir, os.environ.get("PATH", "")])})
    elapsed = time.monotonic() - started
    summary = last_summary(log)
    passed = code == 0
    say(env, f"{'passed' if passed else 'FAILED'} in {elapsed:.0f} s: {summary}")
    if not passed:
        say(env, f"see {log}:\n{tail(log, 60)}")
    return passed, elapsed, summary


def freeze(env: Environment, pytest_args: list[str]) -> None:
    frozen = subprocess.run(
        [str(env.venv / "bin" / "python"), "-m", "pip", "freeze", "--exclude-editable"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    CONSTRAINTS.mkdir(exist_ok=True)
    suite = f"pytest {' '.join(pytest_args)}".strip() if pytest_args else "the whole suite"
    header = (
        f"# Airflow {env.airflow} on Python {env.python}: what `make test-matrix` installed (pip freeze) when\n"
        f"# {suite} passed. Regenerate: python3 scripts/matrix.py --only {env.name} --refresh --freeze\n"
    )
    env.constraints.write_text(header + frozen)
    # The constraints are part of the fingerprint: the environment is what they pin, no reinstall.
    (env.venv / ".matrix-installed").write_text(fingerprint(env))
    say(env, f"wrote {env.constraints.relative_to(REPO)}")


def last_summary(log: Path) -> str:
    for line in reversed(log.read_text(errors="replace").splitlines()):
        match = _SUMMARY.match(line.strip())
        if match:
            return match["text"]
    return "no pytest summary"


def tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        name, separator, version = line.partition("==")
        if separator and not line.startswith("#"):
            pins[re.sub(r"[-_.]+", "-", name.strip().lower())] = version.strip()
    return pins


def same_as_make_test(env: Environment) -> bool:
    """Whether ``make test`` already ran this environment: its ``.venv`` has the same Python and
    every package this environment pins (constraints.txt pins them all, plus the docs and SQL
    tools), at the same versions. Then the matrix skips it unless asked for it by ``--only``."""
    main_constraints = REPO / "constraints.txt"
    if env.pins or env.test_overrides or not env.constraints.exists() or not main_constraints.exists():
        return False
    if f"{sys.version_info.major}.{sys.version_info.minor}" != env.python:
        return False
    main_pins, env_pins = _pins(main_constraints), _pins(env.constraints)
    return env_pins.get("apache-airflow") == env.airflow and all(
        main_pins.get(name) == version for name, version in env_pins.items()
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-j", "--jobs", type=int, default=int(os.environ.get("MATRIX_JOBS", "1")))
    parser.add_argument("--only", nargs="+", metavar="NAME", help="environments to run (see --list)")
    parser.add_argument("--list", action="store_true", help="list the environments and exit")
    parser.add_argument("--install-only", action="store_true")
    parser.add_argument("--refresh", action="store_true", help="reinstall, resolving afresh (ignores constraints)")
    parser.add_argument("--freeze", action="store_true", help="write constraints/ after a green run")
    parser.add_argument("pytest_args", nargs="*", help="after --: arguments for pytest")
    args = parser.parse_args()

    environments = ENVIRONMENTS
    if args.list:
        for env in environments:
            state = "pinned" if env.constraints.exists() else "unpinned"
            print(f"{env.name:16} Airflow {env.airflow:7} Python {env.python:5} {state:9} {' '.join(env.pins)}")
        return 0
    if args.only:
        unknown = set(args.only) - {env.name for env in environments}
        if unknown:
            parser.error(f"unknown environment(s): {', '.join(sorted(unknown))}")
        environments = [env for env in environments if env.name in args.only]
    else:
        for env in [env for env in environments if same_as_make_test(env)]:
            say(
                env, "skipped: `make test` runs the same Airflow, Python and versions (constraints.txt); --only runs it"
            )
            environments = [other for other in environments if other is not env]

    def one(env: Environment) -> dict[str, object]:
        if args.refresh:
            if env.constraints.exists():
                env.constraints.unlink()
            shutil.rmtree(env.venv, ignore_errors=True)
        ok, install_time = install(env, force=args.refresh)
        result: dict[str, object] = {"env": env, "install": install_time, "test": 0.0, "ok": ok, "summary": ""}
        if ok and not args.install_only:
            ok, test_time, summary = test(env, args.pytest_args)
            result.update(ok=ok, test=test_time, summary=summary)
            if ok and args.freeze:
                freeze(env, args.pytest_args)
        elif not ok:
            result["summary"] = "install failed"
        return result

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        longest_first = sorted(environments, key=lambda env: -env.suite_minutes)
        futures = {env.name: pool.submit(one, env) for env in longest_first}
        results = [futures[env.name].result() for env in environments]
    total = time.monotonic() - started

    print(f"\n{'environment':16} {'install':>8} {'tests':>8}  result")
    for result in results:
        env = result["env"]
        assert isinstance(env, Environment)
        status = "ok  " if result["ok"] else "FAIL"
        print(f"{env.name:16} {result['install']:7.0f}s {result['test']:7.0f}s  {status} {result['summary']}")
    print(f"matrix wall time: {total:.0f} s ({max(1, args.jobs)} at a time)")
    return 0 if all(result["ok"] for result in results) else 1


if __name__ == "__main__":
    sys.exit(main())
