"""mcpd/wirejson.py: strict JSON, and never a value read that could not be written out again."""

from __future__ import annotations

import pytest

from mcpd import wirejson


def nested(depth: int, opening: str = "[", closing: str = "]", inner: str = "") -> str:
    return opening * depth + inner + closing * depth


@pytest.mark.parametrize("text", [
    nested(wirejson.MAX_DEPTH), nested(wirejson.MAX_DEPTH, '{"a":', "}", "1"),
    '{"a": ' + nested(wirejson.MAX_DEPTH - 1) + "}",
    "[" + ", ".join(["{}"] * 1000) + "]",  # many containers, shallow
    '{"a": "' + "[" * 1000 + '"}',  # brackets in a string
])
def test_it_reads_values_max_depth_deep(text):
    assert wirejson.loads(text) == wirejson.loads(wirejson.dumps(wirejson.loads(text)))


@pytest.mark.parametrize("text", [
    nested(wirejson.MAX_DEPTH + 1), nested(wirejson.MAX_DEPTH + 1, '{"a":', "}", "1"),
    '{"a": [1, ' + nested(wirejson.MAX_DEPTH) + "]}", nested(300), nested(1024), nested(10_000),
])
def test_it_refuses_values_nested_deeper(text):
    with pytest.raises(wirejson.JSONDecodeError, match="deeper|depth"):
        wirejson.loads(text)


def test_what_it_reads_can_go_out_again_inside_a_translation():
    """mcpd nests a client's values a few levels deeper when it translates (a Responses input item into a
    chat message, a stream event around an output item): a value just within the limit still writes."""
    value = wirejson.loads(nested(wirejson.MAX_DEPTH))
    for _ in range(32):
        value = {"wrapped": [value]}
    assert wirejson.dumps(value)


def test_orjson_still_writes_no_deeper_than_the_limit_the_check_relies_on():
    """The depth check counts on orjson's serializer refusing more than 254 levels (undocumented): if an
    upgrade moves that limit, MAX_DEPTH would silently move with it."""
    value: list = []
    for _ in range(wirejson._DUMPS_DEPTH - 1):
        value = [value]
    assert wirejson.dumps(value)
    with pytest.raises(TypeError, match="[Rr]ecursion"):
        wirejson.dumps([value])


@pytest.mark.parametrize("text", ["NaN", "[Infinity]", "1e400", '"\\ud800"', b'"\xff"', "[1,]", "{'a': 1}"])
def test_it_refuses_what_is_not_strict_json(text):
    with pytest.raises(wirejson.JSONDecodeError):
        wirejson.loads(text)
