"""Filesystems without a verified transactional write go through a hidden temporary sibling.

fsspec's in-memory filesystem stands in for them (GCS, Azure, ...): real fsspec code, no mocks.
"""

from __future__ import annotations

import hashlib
import importlib.util
import uuid

import pytest

from airflow_provider_cfbilling.records import columns_for
from airflow_provider_cfbilling.sinks import read_records, resolve_output, write_records

# A discarded write must not come back from a destructor (gzip and fsspec files flush when collected).
pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")

V2_COLUMNS = columns_for("v2")


@pytest.fixture
def memory_fs():
    from fsspec.implementations.memory import MemoryFileSystem
    from harness import attach_filesystem

    fs = MemoryFileSystem()
    attach_filesystem("memory", fs)
    return fs


@pytest.fixture
def folder(memory_fs) -> str:
    return f"memory://cfbilling-{uuid.uuid4().hex[:12]}/date=2025-05-01"


def _listing(fs, folder: str) -> list[str]:
    return sorted(path.rsplit("/", 1)[-1] for path in fs.find(folder.removeprefix("memory:/")))


@pytest.mark.parametrize("name", ["usage.jsonl", "usage.csv.gz", "usage.parquet"])
def test_write_and_read_back(memory_fs, folder, make_records, name):
    uri = f"{folder}/{name}"
    result = write_records(make_records(2500, unknown_from=10), resolve_output(uri), columns=V2_COLUMNS)

    assert result.records == 2500
    assert result.bytes == memory_fs.size(uri.removeprefix("memory:/"))
    assert result.sha256 == hashlib.sha256(memory_fs.cat_file(uri.removeprefix("memory:/"))).hexdigest()
    assert len(read_records(uri)) == 2500
    assert _listing(memory_fs, folder) == [name], "the temporary sibling is gone"


@pytest.mark.parametrize("name", ["usage.jsonl", "usage.csv.gz", "usage.parquet"])
def test_a_failure_keeps_the_previous_object_and_removes_the_temporary_one(
    memory_fs, folder, make_records, fail_after, boom, name
):
    uri = f"{folder}/{name}"
    write_records(make_records(10), resolve_output(uri), columns=V2_COLUMNS)
    previous = memory_fs.cat_file(uri.removeprefix("memory:/"))

    with pytest.raises(boom):
        write_records(fail_after(make_records(20_000), 5000), resolve_output(uri), columns=V2_COLUMNS, batch_size=1000)

    assert memory_fs.cat_file(uri.removeprefix("memory:/")) == previous
    assert _listing(memory_fs, folder) == [name]


def _unless_installed(module: str):
    try:
        installed = importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        installed = False
    return pytest.mark.skipif(installed, reason=f"{module} is installed")


@pytest.mark.parametrize(
    ("uri", "hint"),
    [
        pytest.param(
            "gs://bucket/usage.jsonl",
            "apache-airflow-providers-google",
            marks=_unless_installed("airflow.providers.google"),
        ),
        pytest.param(
            "abfs://container/usage.jsonl",
            "apache-airflow-providers-microsoft-azure",
            marks=_unless_installed("airflow.providers.microsoft.azure"),
        ),
        ("nosuchfs://bucket/usage.jsonl", "Install the Airflow provider that supplies it"),
    ],
)
def test_a_scheme_without_a_filesystem_says_what_to_install_before_reading_any_record(uri, hint):
    pulled = []

    def records():
        pulled.append(1)
        yield {"a": 1}

    with pytest.raises(ValueError, match="has no filesystem for") as error:
        write_records(records(), resolve_output(uri), columns=[])
    assert hint in str(error.value)
    assert uri in str(error.value)
    assert pulled == []
