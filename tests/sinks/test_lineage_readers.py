"""Hook lineage in a fresh process, as a task meets it: recorded when a reader plugin asks for it,
and without one nothing is built (Airflow's no-op collector alone imports every provider's asset
factories, ``boto3`` included).

The first two run a write in a new interpreter, because Airflow keeps its collector and its
plugins for the life of a process (the throwaway AIRFLOW_HOME of the test session is inherited);
the last replaces Airflow's getter in this process, as a plugin or a test may.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from harness import hook_lineage_module, lineage_outputs

from airflow_provider_cfbilling.sinks import resolve_output, write_records

_READER_PLUGIN = """
from airflow.plugins_manager import AirflowPlugin

try:
    from airflow.sdk.lineage import HookLineageReader
except ImportError:  # before 3.2
    from airflow.lineage.hook import HookLineageReader


class RecordingReader(HookLineageReader):
    pass


class RecordingReaderPlugin(AirflowPlugin):
    name = "cfbilling_test_lineage_reader"
    hook_lineage_readers = [RecordingReader]
"""

_WRITE_AND_INSPECT = """
import json, sys
from airflow_provider_cfbilling.sinks import resolve_output, write_records
from airflow_provider_cfbilling.version_compat import AIRFLOW_V_3_0_PLUS, AIRFLOW_V_3_2_PLUS

records = ({"ChargePeriodStart": "2025-05-01T00:00:00Z", "index": index} for index in range(3))
write_records(records, resolve_output(sys.argv[1]), columns=[])

if AIRFLOW_V_3_2_PLUS:
    import airflow.sdk.lineage as lineage

    built = lineage.get_hook_lineage_collector.cache_info().currsize > 0
else:
    import airflow.lineage.hook as lineage

    built = lineage._hook_lineage_collector is not None
report = {
    "built": built,
    "asset_factories_imported": "airflow.providers.amazon.aws.assets.s3" in sys.modules,
    "boto3_imported": "boto3" in sys.modules,
}
if built:
    collector = lineage.get_hook_lineage_collector()
    collected = collector.collected_assets if AIRFLOW_V_3_0_PLUS else collector.collected_datasets
    report["collector"] = type(collector).__name__
    report["outputs"] = [
        [(item.asset if AIRFLOW_V_3_0_PLUS else item.dataset).uri, item.count] for item in collected.outputs
    ]
print(json.dumps(report))
"""


def _write_in_a_fresh_process(uri: str, plugins_folder: Path) -> dict:
    env = dict(os.environ, AIRFLOW__CORE__PLUGINS_FOLDER=str(plugins_folder))
    completed = subprocess.run(
        [sys.executable, "-c", _WRITE_AND_INSPECT, uri],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_without_a_reader_nothing_is_built_and_no_provider_asset_factory_is_imported(tmp_path):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    uri = f"file://{tmp_path}/out/usage.jsonl"

    report = _write_in_a_fresh_process(uri, plugins)

    assert (tmp_path / "out" / "usage.jsonl").read_text().count("\n") == 3
    assert report == {"built": False, "asset_factories_imported": False, "boto3_imported": False}


def test_with_a_reader_plugin_the_written_object_is_recorded_once(tmp_path):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "lineage_reader.py").write_text(textwrap.dedent(_READER_PLUGIN))
    uri = f"file://{tmp_path}/out/usage.jsonl"

    report = _write_in_a_fresh_process(uri, plugins)

    assert report["built"] is True
    assert report["collector"] == "HookLineageCollector"
    assert report["outputs"] == [[uri, 1]]


def test_a_getter_wrapped_around_airflows_gets_the_report(tmp_path, monkeypatch):
    """A wrapper carries Airflow's name (``functools.wraps``) but is not Airflow's getter."""
    lineage = hook_lineage_module()
    collector = lineage.HookLineageCollector()

    @functools.wraps(lineage.get_hook_lineage_collector)
    def wrapper():
        return collector

    monkeypatch.setattr(lineage, "get_hook_lineage_collector", wrapper)
    uri = f"file://{tmp_path}/usage.jsonl"
    write_records(iter([{"ChargePeriodStart": "2025-05-01T00:00:00Z"}]), resolve_output(uri), columns=[])

    assert lineage_outputs(collector) == [(uri, 1)]
