"""The fast JSON path (msgspec) reads and writes exactly what the json-module path does.

msgspec is installed with Airflow 3 and absent on Airflow 2, so every output must be the same
with and without it: the records parsed from a body (values and types), the bytes of every format
and key style, and the manifests' ``sha256`` and ``content_sha256`` (an upgrade must not make an
existing lake's days look changed). The reference for JSON Lines and the content digest is the
documented form: ``json.dumps(record, separators=(",", ":"), ensure_ascii=False)`` per record.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import io
import json
import math
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from airflow_provider_cfbilling import records as record_tools
from airflow_provider_cfbilling import usage, windows
from airflow_provider_cfbilling.hooks import envelope as envelope_module
from airflow_provider_cfbilling.hooks.envelope import MalformedBodyError, iter_envelope_records
from airflow_provider_cfbilling.landing import Landing, styled
from airflow_provider_cfbilling.manifests import ContentDigest, manifest_uri
from airflow_provider_cfbilling.partitions import DaySpool, DestinationTemplate
from airflow_provider_cfbilling.sinks import encoding, resolve_output, write_records

try:
    import msgspec  # noqa: F401 - only whether it is there
except ImportError:  # Airflow 2: the json path alone, still held to the reference below
    PATHS: tuple[str, ...] = ("json",)
else:
    PATHS = ("msgspec", "json")
WINDOW = windows.resolve_window("2025-06-01", "2025-06-11", {})

# Values where msgspec and the json module could part ways: exponents, tiny and huge floats,
# integers written as floats, negative zero, big integers, non-ASCII, escapes, a record
# separator inside a string (the fast parser must not cut there), nesting and nulls.
AWKWARD: list[dict[str, Any]] = [
    {
        "ChargePeriodStart": "2025-06-03T00:00:00Z",
        "x_BillableMetricId": "awkward_floats",
        "ConsumedQuantity": 1e16,
        "BilledCost": 1e-7,
        "ListCost": 0.1 + 0.2,
        "EffectiveCost": 3.0,
        "ContractedCost": -0.0,
        "x_Huge": 1.7976931348623157e308,
        "x_Subnormal": 5e-324,
        "x_JustBelow": 9999999999999998.0,
        "x_Low": 0.0001,
        "x_Lower": 0.00009999,
        "x_Exp": 1.5e300,
        "x_BigInt": 2**70,
        "x_NegBigInt": -12345678901234567890,
        "x_Bool": True,
        "ChargeClass": None,
    },
    {
        "ChargePeriodStart": "2025-06-04T00:00:00Z",
        "x_BillableMetricId": "awkward_text",
        "ChargeDescription": "Zürich — 東京 🚀 ñ",
        "x_Quote": 'say "hi"},{"x":1}',
        "x_Separator": "},{",
        "x_Control": "a\tb\nc\u0001d\u007f\u2028",
        "x_Backslash": "C:\\path",
        "x_Empty": "",
        "Tags": {"team": "Zürich", "cost-center": None, "list": [1, 2.5, None, {"deep": "é"}], "empty": {}},
        "ChargeClass": "Correction",
    },
    {
        "ChargePeriodStart": "2025-06-04T00:00:00Z",
        "x_BillableMetricId": "awkward_nested",
        "Tags": {"a": {"b": {"c": [[], [None], [1e16]]}}},
        "x_List": [0.5, -0.0, 12, "x", None, False],
        "ConsumedQuantity": 0,
    },
]
NAN_RECORD = {
    "ChargePeriodStart": "2025-06-05T00:00:00Z",
    "x_BillableMetricId": "nan",
    "x_NaN": float("nan"),
    "x_Inf": float("inf"),
}


def _reference_line(record: dict[str, Any]) -> bytes:
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False, default=encoding._json_default).encode()


def _strict(value: Any) -> Any:
    """A form that tells apart what ``==`` does not: 1, 1.0 and True; 0.0 and -0.0; NaN."""
    if isinstance(value, dict):
        return ("dict", [(key, _strict(item)) for key, item in value.items()])
    if isinstance(value, list):
        return ("list", [_strict(item) for item in value])
    if isinstance(value, float):
        return ("float", "nan" if math.isnan(value) else value.hex())
    return (type(value).__name__, value)


def _use(path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    on = path == "msgspec"
    monkeypatch.setattr(envelope_module, "USE_MSGSPEC", on)
    monkeypatch.setattr(encoding, "USE_MSGSPEC", on)
    encoding._reset_fast_path()
    assert encoding.fast_json_available() is on


@pytest.fixture(autouse=True)
def _restore_fast_path() -> Iterator[None]:
    yield
    encoding._reset_fast_path()


@pytest.fixture
def emulator_records(emulator: Any) -> list[dict[str, Any]]:
    """Ten days of v2 usage from the emulator, as its body holds them, plus the awkward records."""
    from airflow_provider_cfbilling.emulator import DEFAULT_ACCOUNT_ID, DEFAULT_TOKEN

    response = httpx.get(
        f"{emulator.base_url}/accounts/{DEFAULT_ACCOUNT_ID}/billable/usage",
        params={"from": "2025-06-01", "to": "2025-06-10"},
        headers={"Authorization": f"Bearer {DEFAULT_TOKEN}"},
        timeout=60,
    )
    response.raise_for_status()
    records = json.loads(response.content)["result"]
    assert len(records) > 100
    # Spread the awkward records through the body, so they land inside the fast path's chunks.
    mixed = list(records)
    for index, record in enumerate(AWKWARD):
        mixed.insert((index + 1) * len(records) // (len(AWKWARD) + 1), record)
    return mixed


def _bodies(records: list[dict[str, Any]]) -> dict[str, bytes]:
    compact = {"separators": (",", ":"), "ensure_ascii": False}
    return {
        "compact, result first": json.dumps(
            {"result": records, "success": True, "errors": [], "messages": []}, **compact
        ).encode(),
        "compact, success first": json.dumps(
            {"success": True, "errors": [], "messages": [], "result": records}, **compact
        ).encode(),
        "ASCII escapes": json.dumps({"success": True, "result": records}, separators=(",", ":")).encode(),
        "indented": json.dumps({"result": records, "success": True}, indent=2).encode(),
        "spaced separators": json.dumps({"errors": [], "result": records, "success": True}).encode(),
    }


@pytest.mark.parametrize("chunk", [1 << 20, 997])
@pytest.mark.parametrize("path", PATHS)
def test_parsed_records_are_those_json_loads_reads(emulator_records, path, chunk, monkeypatch):
    _use(path, monkeypatch)
    monkeypatch.setattr(envelope_module, "_FAST_CHUNK", chunk)
    for name, body in _bodies(emulator_records).items():
        parsed = list(iter_envelope_records(io.BytesIO(body), 200, "v2"))
        assert _strict(parsed) == _strict(json.loads(body)["result"]), name


@pytest.mark.parametrize("path", PATHS)
def test_values_msgspec_refuses_are_read_by_the_json_module(emulator_records, path, monkeypatch):
    _use(path, monkeypatch)
    monkeypatch.setattr(envelope_module, "_FAST_CHUNK", 4096)
    records = [*emulator_records[:50], NAN_RECORD, *emulator_records[50:100]]
    body = json.dumps({"result": records, "success": True}, separators=(",", ":")).encode()
    parsed = list(iter_envelope_records(io.BytesIO(body), 200, "v2"))
    assert _strict(parsed) == _strict(json.loads(body)["result"])


@pytest.mark.parametrize("path", PATHS)
def test_malformed_bodies_fail_the_same_way(emulator_records, path, monkeypatch):
    _use(path, monkeypatch)
    monkeypatch.setattr(envelope_module, "_FAST_CHUNK", 4096)
    body = json.dumps({"result": emulator_records[:60], "success": True}, separators=(",", ":")).encode()
    for broken in (
        body[: len(body) // 2],
        body.replace(b'"Usage"', b'"Us\x01age"', 1),
        body.replace(b"Cloudflare", b"Cloud\xfflare", 1),
    ):
        seen = 0
        with pytest.raises(MalformedBodyError, match="not valid JSON"):
            for _ in iter_envelope_records(io.BytesIO(broken), 200, "v2"):
                seen += 1
        assert seen < 60


def test_encode_lines_gives_the_json_module_bytes_for_every_value(emulator_records, monkeypatch):
    odd: list[dict[str, Any]] = [
        NAN_RECORD,
        {"when": dt.datetime(2025, 6, 1, 12, tzinfo=dt.timezone.utc), "day": dt.date(2025, 6, 1)},
        {"amount": Decimal("1.10"), "set": {3, 1}, "tuple": (1, 2)},
        {1: "int key", "x": None},
        {"subclass": type("Text", (str,), {})("plain")},
        {"nested_datetime": {"at": dt.datetime(2025, 6, 1)}},
        {},
    ]
    batches = [emulator_records, AWKWARD, odd, [*emulator_records[:10], *odd, *AWKWARD]]
    for path in PATHS:
        _use(path, monkeypatch)
        for batch in batches:
            expected = [_reference_line(record) for record in batch]
            assert encoding.encode_lines(batch) == expected, path
            assert encoding._encode_batch(batch) == b"".join(line + b"\n" for line in expected), path
            for record in batch:
                assert encoding.encode_json(record).encode() == _reference_line(record)


FORMATS = ("usage.jsonl", "usage.jsonl.gz", "usage.csv", "usage.csv.gz", "usage.parquet")


@pytest.mark.parametrize("key_style", record_tools.KEY_STYLES)
def test_every_format_and_key_style_writes_the_same_bytes_on_both_paths(
    emulator_records, key_style, tmp_path, monkeypatch
):
    body = json.dumps({"result": emulator_records, "success": True}, separators=(",", ":"), ensure_ascii=False).encode()
    written: dict[str, dict[str, bytes]] = {}
    for path in PATHS:
        _use(path, monkeypatch)
        for name in FORMATS:
            records = usage.in_window(iter_envelope_records(io.BytesIO(body), 200, "v2"), WINDOW, "v2")
            target = tmp_path / path / name
            result = write_records(
                styled(records, key_style),
                resolve_output(f"file://{target}"),
                columns=record_tools.columns_for("v2", key_style),
            )
            data = target.read_bytes()
            assert result.sha256 == hashlib.sha256(data).hexdigest()
            written.setdefault(name, {})[path] = data
    for name, by_path in written.items():
        assert all(data == by_path["json"] for data in by_path.values()), name
    kept = [
        record
        for record in emulator_records
        if WINDOW.start_timestamp <= record_tools.parse_timestamp(record["ChargePeriodStart"]) < WINDOW.end_timestamp
    ]
    expected = b"".join(_reference_line(record_tools.apply_key_style(record, key_style)) + b"\n" for record in kept)
    assert written["usage.jsonl"]["json"] == expected
    assert gzip.decompress(written["usage.jsonl.gz"]["json"]) == expected


def _reference_digests(records: list[dict[str, Any]]) -> dict[dt.date, tuple[int, int]]:
    """Per day: the record count and the sum of the records' SHA-256, as manifests define them."""
    sums: dict[dt.date, tuple[int, int]] = {}
    for record in records:
        day = usage.charge_day(record)
        count, total = sums.get(day, (0, 0))
        digest = int.from_bytes(hashlib.sha256(_reference_line(record)).digest(), "big")
        sums[day] = (count + 1, (total + digest) % (1 << 256))
    return sums


@pytest.mark.parametrize("key_style", record_tools.KEY_STYLES)
@pytest.mark.parametrize("name", ["usage.jsonl", "usage.jsonl.gz", "usage.csv", "usage.parquet"])
def test_day_partitions_and_manifests_are_the_same_on_both_paths(
    emulator_records, name, key_style, tmp_path, monkeypatch
):
    kept = list(usage.in_window(emulator_records, WINDOW, "v2"))
    reference = _reference_digests(kept)
    results: dict[str, dict[str, Any]] = {}
    for path in PATHS:
        _use(path, monkeypatch)
        landing = Landing(
            endpoint="/accounts/{account_id}/billable/usage",
            owner={"account_id": "a" * 32},
            source="v2",
            key_style=key_style,
            file_format=None,
            conn_id=None,
        )
        template = DestinationTemplate(f"file://{tmp_path}/{path}/{{charge_date}}/{name}")
        with DaySpool(iter(kept), usage.charge_day) as spool:
            for day, digest in spool.digests.items():
                count, total = reference[day]
                assert (digest.records, digest._sum) == (count, total), (path, day)
                expected_digest = ContentDigest(records=count, _sum=total)
                settings = {"format": "x"}
                assert digest.hexdigest(settings) == expected_digest.hexdigest(settings)
            for day in spool.digests:
                assert _strict(list(spool.records(day))) == _strict([r for r in kept if usage.charge_day(r) == day])
            partitions = landing.write_days(spool, template, WINDOW)
        outcome = {}
        for part in partitions:
            uri = part["uri"]
            local = uri.removeprefix("file://")
            with open(manifest_uri(local), encoding="utf-8") as handle:
                manifest = json.loads(handle.read())
            with open(local, "rb") as handle:
                data = handle.read()
            assert manifest["sha256"] == hashlib.sha256(data).hexdigest()
            keep = ("records", "bytes", "sha256", "content_sha256", "columns", "corrections")
            outcome[part["charge_date"]] = (data, {key: manifest[key] for key in keep})
        results[path] = outcome
    assert all(result == results["json"] for result in results.values())
    if name == "usage.jsonl":
        for day_text, (data, _manifest) in results["json"].items():
            day = dt.date.fromisoformat(day_text)
            day_records = [record_tools.apply_key_style(r, key_style) for r in kept if usage.charge_day(r) == day]
            assert data == b"".join(_reference_line(record) + b"\n" for record in day_records)
