"""The JSON document the integration suite sends through orjson: varied, deterministic, and sizeable."""

from typing import Any


def record(i: int) -> dict[str, Any]:
    return {
        "id": i,
        "name": f"item-{i}-ß-{chr(0x4E00 + i)}",
        "emoji": "🚀🐍🦀"[i % 3] + "✓",
        "price": i * 1.25 + 0.1,
        "ratio": 1 / (i + 1),
        "big": 2**53 - i,
        "negative": -i,
        "active": i % 2 == 0,
        "missing": None,
        "tags": [f"t{j}" for j in range(i % 5)],
        "nested": {"level": {"deeper": [i, str(i), {"third": i / 3, "flag": i % 3 == 0}]}},
    }


def document(records: int = 200) -> dict[str, Any]:
    """About 50 KB of JSON: unicode, emoji, floats, ints, bools, None, nesting, empty containers."""
    return {
        "title": "irun integration ✓ — ünïcödé, 日本語, emoji 🎉",
        "escapes": "quote \" backslash \\ newline \n tab \t nul \u0000 bell \u0007",
        "floats": [0.0, -0.0, 1e-7, 1.5e300, 3.141592653589793, -2.5, 1e16],
        "ints": [0, -1, 2**31, -(2**31), 2**63 - 1, -(2**63)],
        "bools": [True, False],
        "none": None,
        "empty": {"list": [], "dict": {}, "string": ""},
        "records": [record(i) for i in range(records)],
    }
