"""JSON Lines encoding, and the spool CSV and Parquet are written from."""

from __future__ import annotations

import json
import logging
import pickle
import tempfile
from collections.abc import Iterable, Iterator
from datetime import date, datetime, timezone
from decimal import Decimal
from itertools import chain, islice
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    pass


log = logging.getLogger(__name__)

# Records encoded and written together for JSON Lines (CSV/Parquet use ``batch_size``).
_JSONL_BATCH = 1000


# ---- JSON Lines ----------------------------------------------------------------------------


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(timezone.utc)
            return value.replace(tzinfo=None).isoformat() + "Z"
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    raise TypeError(f"{type(value).__name__} is not JSON serializable: {value!r}")


def _compact_json_encoder() -> Any:
    """``json.dumps(value, separators=(",", ":"), ensure_ascii=False)``, minus per-call set-up.

    ``JSONEncoder.encode`` builds a new C encoder on every call; for millions of records, building
    it once saves about a third of the encoding time. Same output; the documented path otherwise.
    """
    encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False, default=_json_default)
    make_encoder = getattr(json.encoder, "c_make_encoder", None)
    if make_encoder is None:  # pragma: no cover - interpreters without the C accelerator
        return encoder.encode
    chunks = make_encoder(
        None,  # no circular-reference markers (check_circular=False)
        _json_default,
        json.encoder.encode_basestring,  # ensure_ascii=False
        None,  # indent
        ":",
        ",",
        False,  # sort_keys
        False,  # skipkeys
        True,  # allow_nan, as json.dumps
    )

    def encode(value: Any, _join: Any = "".join) -> str:
        return _join(chunks(value, 0))

    return encode


_encode_json = _compact_json_encoder()
encode_json = _encode_json  # one record as compact JSON text, keys as sent (also the content digest's form)


# ---- the fast path: msgspec, where it provably writes the same bytes ------------------------
#
# msgspec (installed with Airflow 3, absent on Airflow 2) encodes a record several times faster
# than the json module. Its output is used only where it is byte for byte what ``encode_json``
# writes, which these checks establish without running the json module:
#
# - every value is a plain JSON value: ``dict`` (``str`` keys), ``list``, ``str``, ``int``,
#   ``float``, ``bool`` or ``None``, exactly those types (no subclass, no datetime, Decimal, set,
#   tuple: msgspec has its own spelling for those);
# - every float is 0 or finite with 1e-4 <= abs(x) < 1e16: there both write the shortest repr
#   as plain decimals (checked against 1.3 million random floats); outside it they spell
#   exponents differently (``1e16`` against ``1e+16``, ``0.00001`` against ``1e-05``), and
#   msgspec writes NaN and infinities as ``null`` where the json module writes ``NaN``;
# - no backslash in the output: no string needed an escape (quote, backslash, control
#   character); other text, non-ASCII included, is written as UTF-8 by both.
#
# A batch that fails a check is encoded record by record, and a record that fails one by the
# json module: the same bytes either way (``tests/sinks/test_fast_json.py`` proves it).

_FLAT_TYPES = frozenset({str, int, float, bool, type(None)})
_PLAIN_TYPES_ALL = _FLAT_TYPES | {dict, list}
_STR_ONLY = frozenset({str})
_DICT_ONLY = frozenset({dict})
_FLOAT_LOW, _FLOAT_HIGH = 1e-4, 1e16
_msgspec_encode: Any = None
_msgspec_encode_lines: Any = None
_msgspec_checked = False

USE_MSGSPEC = True
"""Set to False (then call ``_reset_fast_path``) to use the json module only; tests and benchmarks."""


def fast_json_available() -> bool:
    """Whether the msgspec fast path is in use (msgspec importable and not switched off)."""
    return _msgspec() is not None


def _msgspec() -> Any:
    global _msgspec_encode, _msgspec_encode_lines, _msgspec_checked, _msgspec_decode
    if not _msgspec_checked:
        _msgspec_checked = True
        _msgspec_encode = _msgspec_encode_lines = _msgspec_decode = None
        if USE_MSGSPEC:
            try:
                from msgspec.json import Decoder, Encoder
            except ImportError:  # Airflow 2: the json module does it all
                pass
            else:
                encoder = Encoder()
                _msgspec_encode, _msgspec_encode_lines = encoder.encode, encoder.encode_lines
                _msgspec_decode = Decoder().decode
    return _msgspec_encode


def _reset_fast_path() -> None:
    """Re-read :data:`USE_MSGSPEC` (tests)."""
    global _msgspec_checked
    _msgspec_checked = False


def _plain_values(values: list[Any]) -> bool:
    """Every value (and, recursively, every item of their dicts and lists) is a plain JSON value
    that msgspec spells as the json module does (see above)."""
    types = set(map(type, values))
    if not types <= _FLAT_TYPES:
        if not types <= _PLAIN_TYPES_ALL:
            return False
        nested: list[Any] = []
        for value in values:
            kind = type(value)
            if kind is dict:
                if not set(map(type, value)) <= _STR_ONLY:
                    return False
                nested.extend(value.values())
            elif kind is list:
                nested.extend(value)
        if not _plain_values(nested):
            return False
    if float in types:
        magnitudes = [abs(value) for value in values if type(value) is float and value]
        if magnitudes:
            total = sum(magnitudes)
            if total != total or total == _INFINITY:  # NaN or an infinity (or an overflowing sum)
                return False
            if min(magnitudes) < _FLOAT_LOW or max(magnitudes) >= _FLOAT_HIGH:
                return False
    return True


_INFINITY = float("inf")


def _plain_batch(batch: list[dict[str, Any]]) -> bool:
    return (
        set(map(type, batch)) <= _DICT_ONLY
        and set(map(type, chain.from_iterable(batch))) <= _STR_ONLY
        and _plain_values(list(chain.from_iterable(map(dict.values, batch))))
    )


def _one_line(record: dict[str, Any], encode: Any) -> bytes:
    if _plain_batch([record]):
        line: bytes = encode(record)
        if b"\\" not in line:
            return line
    return _encode_json(record).encode("utf-8")


def encode_lines(batch: list[dict[str, Any]]) -> list[bytes]:
    """Each record as ``encode_json(record).encode("utf-8")``, with msgspec where it gives those bytes."""
    encode = _msgspec()
    if encode is None or not batch:
        return [_encode_json(record).encode("utf-8") for record in batch]
    if _plain_batch(batch):
        lines = list(map(encode, batch))
        if not any(b"\\" in line for line in lines):
            return lines
    return [_one_line(record, encode) for record in batch]


def _encode_block(batch: list[dict[str, Any]], encode: Any) -> bytes:
    if _plain_batch(batch):
        # Each record's encode() and a newline, in one call (a third of the time of joining them).
        block: bytes = _msgspec_encode_lines(batch)
        if b"\\" not in block:
            return block
    return b"\n".join([_one_line(record, encode) for record in batch]) + b"\n"


def decode_lines(block: bytes) -> list[dict[str, Any]]:
    """The records of JSON Lines written by :func:`encode_lines` (each line one object), as the
    json module reads them; msgspec decodes the block at once where it accepts it."""
    decode = _msgspec_decoder()
    if decode is not None and block:
        try:
            # A JSON line holds no raw newline (json escapes it), so the lines joined by commas
            # are the elements of one array.
            records = decode(b"[" + block.rstrip(b"\n").replace(b"\n", b",") + b"]")
        except Exception:  # NaN, infinities, lone surrogates: only the json module reads them
            records = None
        if type(records) is list:
            return records
    return [json.loads(line) for line in block.decode("utf-8").split("\n") if line]


_msgspec_decode: Any = None


def _msgspec_decoder() -> Any:
    _msgspec()
    return _msgspec_decode


def _jsonl_batches(records: Iterable[dict[str, Any]], batch_size: int) -> Iterator[list[dict[str, Any]]]:
    iterator = iter(records)
    while batch := list(islice(iterator, batch_size)):
        yield batch


def _encode_batch(batch: list[dict[str, Any]]) -> bytes:
    encode = _msgspec()
    if encode is not None and batch:
        return _encode_block(batch, encode)
    return ("\n".join(map(_encode_json, batch)) + "\n").encode("utf-8")


def _write_encoded(blocks: Iterable[tuple[bytes, int]], stream: IO[bytes]) -> int:
    count = 0
    for block, records in blocks:
        stream.write(block)
        count += records
    return count


def _write_jsonl(records: Iterable[dict[str, Any]], stream: IO[bytes], batch_size: int) -> int:
    count = 0
    for batch in _jsonl_batches(records, batch_size):
        stream.write(_encode_batch(batch))
        count += len(batch)
    return count


# ---- spool (CSV and Parquet) ---------------------------------------------------------------


class _Spool:
    """The records in a local temporary file, with their count and the union of their keys.

    Pickled per batch: an order of magnitude faster than JSON both ways, and exact for every
    Python type. The file is unlinked at creation (deleted even if the worker dies) and lives
    where ``tempfile`` puts it (``TMPDIR``).
    """

    def __init__(self, records: Iterable[dict[str, Any]], batch_size: int) -> None:
        self.file: IO[bytes] = tempfile.TemporaryFile(prefix="cfbilling-spool-")  # noqa: SIM115
        self.count = 0
        self.frames = 0
        self.keys: list[str] = []  # sorted
        try:
            seen: set[str] = set()
            add_keys = seen.update
            for batch in _jsonl_batches(records, batch_size):
                # Which batches hold values other than str, int, float and None: only those need
                # the slower, per-value conversion when written as CSV.
                value_types = set(map(type, chain.from_iterable(map(dict.values, batch))))
                plain = value_types <= _PLAIN_TYPES
                pickle.dump((plain, batch), self.file, protocol=pickle.HIGHEST_PROTOCOL)
                self.frames += 1
                self.count += len(batch)
                for record in batch:
                    add_keys(record)
            self.keys = sorted(seen)
            self.file.flush()
        except BaseException:
            self.file.close()
            raise

    def __enter__(self) -> _Spool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.file.close()

    def batches(self) -> Iterator[tuple[bool, list[dict[str, Any]]]]:
        """Yield ``(plain, records)`` per batch, in order; ``plain``: only str/int/float/None values."""
        self.file.seek(0)
        for _ in range(self.frames):
            yield pickle.load(self.file)


_PLAIN_TYPES = frozenset({str, int, float, type(None)})
