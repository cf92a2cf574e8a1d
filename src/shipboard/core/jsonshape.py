"""The shape of a JSON body, checked on its bytes before any parser builds objects from it.

Parsed JSON costs far more than its text: ``{}`` is 2 bytes on the wire and ~64 in a Python
dict, so a 60 MB body of empty objects became a gigabyte before any validation could refuse it.
And nesting 300 levels deep parsed fine but broke later (recursion in serialisers: a 500).
:func:`check` bounds both on the raw bytes, at C speed (regex and ``bytes`` operations, numpy
for the running depth): at most ``MAX_VALUES`` JSON values (no route takes more than 10,000
items of a few dozen values each), at most ``MAX_DEPTH`` levels, and integers within 64 bits.
A body that is not JSON at all passes through to the parser, which says so.
"""

from __future__ import annotations

import re

import numpy as np

from shipboard.core.errors import InvalidInput, PayloadTooLarge

MAX_DEPTH = 64
MAX_VALUES = 500_000
# Integers are stored and serialised as 64-bit (orjson, BIGINT): a larger one parsed fine and
# broke later, in whichever JSON column it reached (log metadata: a 500). Floats are not bound.
MIN_INTEGER, MAX_INTEGER = -(2**63), 2**64 - 1
_NINETEEN_DIGITS = re.compile(rb"[0-9]{19}")
_LONG_INTEGER = re.compile(rb"(?<![\d.eE+\-])-?\d{19,}(?![\d.eE])")

# A JSON string, escapes included; unrolled so that a long string is one fast scan.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_ALL = bytes(range(256))
_NOT_STRUCTURE = bytes(c for c in _ALL if c not in b"[]{},")
_NOT_BRACKET = bytes(c for c in _ALL if c not in b"[]{}")
_STEP = np.zeros(256, dtype=np.int32)
_STEP[[ord("["), ord("{")]] = 1
_STEP[[ord("]"), ord("}")]] = -1
_CHUNK = 1 << 22


def check(raw: bytes, *, where: tuple[str, ...] = ("body",)) -> None:
    """Refuse a JSON text that is nested deeper than ``MAX_DEPTH`` (422) or holds more than
    ``MAX_VALUES`` values (413); anything else, valid or not, is left to the parser."""
    if not raw:
        return
    # Brackets and commas inside strings are text, not structure.
    text = _STRING.sub(b"", raw)
    skeleton = text.translate(None, _NOT_STRUCTURE)
    values = skeleton.count(b"[") + skeleton.count(b"{") + skeleton.count(b",") + 1
    if values > MAX_VALUES:
        raise PayloadTooLarge(
            f"the JSON body holds more than {MAX_VALUES:,} JSON values; send fewer per request"
        )
    if _depth(skeleton.translate(None, _NOT_BRACKET)) > MAX_DEPTH:
        detail = f"JSON nested deeper than {MAX_DEPTH} levels"
        raise InvalidInput(detail, errors=[{"loc": list(where), "msg": detail}])
    # The plain scan is a third of the exact one's cost, and almost no body has 19 digits.
    for match in _LONG_INTEGER.finditer(text) if _NINETEEN_DIGITS.search(text) else ():
        digits = match.group()
        # No 64-bit integer has more than 20 digits; int() of thousands would itself refuse.
        if len(digits) > 21 or not MIN_INTEGER <= int(digits) <= MAX_INTEGER:
            detail = "a JSON integer is outside the 64-bit range"
            raise InvalidInput(detail, errors=[{"loc": list(where), "msg": detail}])


def _depth(brackets: bytes) -> int:
    deepest, level = 0, 0
    for start in range(0, len(brackets), _CHUNK):
        steps = _STEP[np.frombuffer(brackets, dtype=np.uint8, offset=start)[:_CHUNK]]
        running = np.cumsum(steps, dtype=np.int64) + level
        deepest = max(deepest, int(running.max()))
        level = int(running[-1])
    return deepest
