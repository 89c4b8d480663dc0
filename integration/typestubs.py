"""Exercise orjson's typed API. Runs under Python (every assertion checked) and passes `mypy --strict`."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import uuid

import orjson


@dataclasses.dataclass
class Point:
    x: int
    y: int


class Colour(enum.Enum):
    RED = "red"


def default(obj: object) -> object:
    """Serialise what orjson does not know natively; anything else is an error, as orjson expects."""
    if isinstance(obj, complex):
        return [obj.real, obj.imag]
    if isinstance(obj, set):
        return sorted(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__}")


def dumps_with_options() -> int:
    checks = 0
    indented: bytes = orjson.dumps({"b": 1, "a": [1, 2]}, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2)
    assert indented == b'{\n  "a": [\n    1,\n    2\n  ],\n  "b": 1\n}', indented
    checks += 1
    assert orjson.dumps({1: "one"}, option=orjson.OPT_NON_STR_KEYS) == b'{"1":"one"}'
    assert orjson.dumps([1], option=orjson.OPT_APPEND_NEWLINE) == b"[1]\n"
    checks += 2
    moment = datetime.datetime(2026, 11, 22, 9, 30, 0, 123456)
    assert orjson.dumps(moment, option=orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z) == b'"2026-11-22T09:30:00.123456Z"'
    assert orjson.dumps(moment, option=orjson.OPT_OMIT_MICROSECONDS) == b'"2026-11-22T09:30:00"'
    checks += 2
    assert orjson.dumps(Point(1, 2)) == b'{"x":1,"y":2}'
    assert orjson.dumps(Point(1, 2), option=orjson.OPT_PASSTHROUGH_DATACLASS, default=lambda p: [p.x, p.y]) == b"[1,2]"
    checks += 2
    assert orjson.dumps(uuid.UUID(int=1)) == b'"00000000-0000-0000-0000-000000000001"'
    assert orjson.dumps(Colour.RED) == b'"red"'
    checks += 2
    try:
        orjson.dumps(2**60, option=orjson.OPT_STRICT_INTEGER)
        raise AssertionError("OPT_STRICT_INTEGER accepted an integer above 2**53")
    except orjson.JSONEncodeError as e:
        assert "53" in str(e) or "Integer" in str(e), e
    checks += 1
    return checks


def dumps_with_default() -> int:
    assert orjson.dumps({"z": 1 + 2j}, default=default) == b'{"z":[1.0,2.0]}'
    assert orjson.dumps({3, 1, 2}, default=default) == b"[1,2,3]"
    try:
        orjson.dumps(object(), default=default)
        raise AssertionError("an unserialisable object was accepted")
    except orjson.JSONEncodeError as e:
        assert isinstance(e, TypeError)
    return 3


def loads_and_fragments() -> int:
    value = orjson.loads(b'{"a": [1, 2.5, "x", null, true]}')
    assert value == {"a": [1, 2.5, "x", None, True]}
    assert orjson.loads("[1]") == [1]
    assert orjson.loads(bytearray(b"2")) == 2
    assert orjson.loads(memoryview(b'"m"')) == "m"
    fragment = orjson.Fragment(b'{"already":"serialised"}')
    assert orjson.dumps({"f": fragment}) == b'{"f":{"already":"serialised"}}'
    assert orjson.dumps([orjson.Fragment("1")]) == b"[1]"
    return 6


def decode_errors() -> int:
    try:
        orjson.loads('{"a": 1,\n "b": }')
        raise AssertionError("invalid JSON was accepted")
    except orjson.JSONDecodeError as e:
        msg: str = e.msg
        doc: str = e.doc
        pos: int = e.pos
        lineno: int = e.lineno
        colno: int = e.colno
        assert isinstance(e, ValueError)
        assert msg and doc.startswith('{"a"'), (msg, doc)
        assert (lineno, colno) == (2, 7) and pos == 15, (lineno, colno, pos)
    return 6


def main() -> None:
    checks = dumps_with_options() + dumps_with_default() + loads_and_fragments() + decode_errors()
    print(f"{checks} typed API checks passed")


if __name__ == "__main__":
    main()
