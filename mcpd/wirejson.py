"""JSON as it crosses the wire (client bodies in, provider bodies out and back): strict and fast.

orjson parses RFC 8259 JSON only: NaN, Infinity and numbers that overflow to infinity are refused,
as are invalid UTF-8 and lone surrogates. It is also 2-3x faster than the standard library at loading
and ~10x at dumping, which every inference call pays. Integers beyond 64 bits are read as floats.

Depth: orjson reads up to 1024 levels but writes only up to 254 (its serializer's recursion limit), so
a body it had read could fail to go out again, upstream or back to the client, with a TypeError (a 500).
What `loads` gives therefore has at most MAX_DEPTH levels, well below what `dumps` writes: mcpd nests a
client's values a few levels deeper when it translates between formats.
"""

from __future__ import annotations

from typing import Any

import orjson

MAX_DEPTH = 128  # arrays and objects nested deeper are refused
_DUMPS_DEPTH = 254  # orjson writes no deeper ("Recursion limit reached"; undocumented: tests/unit/test_wirejson.py)

JSONDecodeError = orjson.JSONDecodeError  # a ValueError


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    """The value of a JSON text; raises JSONDecodeError (a ValueError) naming what is wrong and where."""
    value = orjson.loads(data)
    if isinstance(value, dict | list) and _may_be_too_deep(data) and _deeper_than_max(value):
        raise JSONDecodeError(f"nested deeper than {MAX_DEPTH} levels", "", 0)
    return value


def _may_be_too_deep(data: bytes | bytearray | memoryview | str) -> bool:
    """Whether the text opens more than MAX_DEPTH arrays and objects, as a text nested deeper must: a
    count costs a fraction of the check below, which most texts (a stream's chunks) then skip."""
    if isinstance(data, memoryview):
        data = data.tobytes()
    opening = ("[", "{") if isinstance(data, str) else (b"[", b"{")
    return data.count(opening[0]) + data.count(opening[1]) > MAX_DEPTH  # type: ignore[arg-type]


def _deeper_than_max(value: dict | list) -> bool:
    """Whether the value nests deeper than MAX_DEPTH. orjson counts, at its own speed (~10x a walk in
    Python): wrapped in enough lists to reach its limit, a deeper value cannot be written."""
    for _ in range(_DUMPS_DEPTH - MAX_DEPTH):
        value = [value]
    try:
        orjson.dumps(value)
    except orjson.JSONEncodeError:
        return True
    return False


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON of a value built from JSON types."""
    return orjson.dumps(value)
