"""JSON from outside, parsed with a depth bound.

Python's JSON decoder recurses once per nesting level, in C. Its guard is the interpreter's
recursion limit, which libraries paywire loads raise (py-evm to 10^4, py_ecc to 10^5): past
a few tens of thousands of levels, the C stack overflows before the guard trips and the
process dies (a segmentation fault, found by a hostile-input test). So every JSON text that
comes from outside (HTTP bodies and headers, files to audit, documents to verify) is
measured first, without recursion, and refused past `MAX_JSON_DEPTH`.
"""

from __future__ import annotations

import json
from typing import Any

MAX_JSON_DEPTH = 64
"""Deeper than any document paywire reads (x402 objects nest 4 deep, log entries 6)."""


class JsonTooDeep(ValueError):
    """JSON text nested past the depth bound (a `ValueError`, like any undecodable JSON)."""


def json_depth(text: str) -> int:
    """How deep JSON text nests, counted without parsing it (brackets inside strings do
    not count)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def loads(text: str | bytes | bytearray, *, max_depth: int = MAX_JSON_DEPTH, **options: Any) -> Any:
    """`json.loads` for text from outside: `JsonTooDeep` past `max_depth` levels.

    Bytes must be UTF-8 (a `UnicodeDecodeError`, also a `ValueError`, otherwise)."""
    decoded = text.decode("utf-8") if isinstance(text, bytes | bytearray) else text
    # Fewer brackets than the bound cannot nest past it: most texts skip the scan.
    if decoded.count("[") + decoded.count("{") > max_depth and json_depth(decoded) > max_depth:
        raise JsonTooDeep(f"JSON nested deeper than {max_depth} levels")
    return json.loads(decoded, **options)
