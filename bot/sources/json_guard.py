"""Byte-level guards run on JSON before the C streaming parser (ijson's yajl2_c) sees it.

The parser is fast but trusts its input in ways a hostile sender can exploit, and real senders
write things JSON forbids. Each guard rewrites the bytes so that one bad value costs only the
record holding it, never the whole body nor the process. `RUN_BYTES` tells the caller where a
piece of a stream may end so that no guarded sequence is split between two pieces.
"""

from __future__ import annotations

import re

# Bytes that can belong to a JSON escape (\uXXXX), a number's digit run, a multi-byte UTF-8
# character or a `: NaN` / `, -Infinity` value. Each piece handed to the parser ends on a byte
# outside this set, so none of those is ever split between two pieces: the rewrites below see
# each of them whole.
RUN_BYTES = b"0123456789abcdefABCDEFu\\ \t\r\n:,[.+-NIinty" + bytes(range(0x80, 0x100))
# Python's json.dumps (LiteLLM's) writes NaN and Infinity for non-finite floats, which JSON and
# the C parser refuse: as values they become null (a cost LiteLLM could not compute is priced
# here), so one bad float does not lose a whole batch. Inside strings nothing structural changes.
_NON_FINITE = re.compile(rb"([:,\[]\s*)(?:NaN|-?Infinity)(?![A-Za-z0-9_])")
# A lone UTF-16 surrogate escape: the C parser would turn it into '?' (a high one) or fail the
# whole body (a low one). It becomes \u0000 instead, which validation rejects for that event only.
_SURROGATE_HINT = re.compile(rb"\\u[dD][89a-fA-F]")
_LONE_SURROGATE = re.compile(
    rb"(\\+)u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})"
    rb"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})(\\+)u[dD][c-fC-F][0-9a-fA-F]{2}"
)
# Surrogates encoded as raw bytes (CESU-8 / WTF-8 senders): the same, not a whole-body failure.
_RAW_SURROGATE = re.compile(rb"\xed[\xa0-\xbf][\x80-\xbf]")
# ijson's C backend converts integer literals with PyLong_FromString and does not check the
# result: past Python's 4300-digit limit it crashes the process (ijson 3.6, yajl2_c). A run of
# this many digits gets an `e0` exponent so it is read as a Decimal, and validation rejects it.
_LONG_DIGITS = re.compile(rb"\d{300,}")
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
# A run of 300 digits holds two bytes at consecutive multiples of 150 and every byte between them:
# every 150th byte is looked at first, and only a digit pair among them is looked into.
_STRIDE = 150


def _fix_surrogate(match: re.Match) -> bytes:
    run = match.group(1) or match.group(2)
    if len(run) % 2 == 0:  # an escaped backslash followed by the letter u: not an escape
        return match.group(0)
    return run[:-1] + b"\\u0000"


def _fix_digits(match: re.Match) -> bytes:
    data, start, end = match.string, match.start(), match.end()
    before = data[start - 1 : start]
    if before in (b"e", b"E") or (before in (b"+", b"-") and data[start - 2 : start - 1] in (b"e", b"E")):
        # an exponent Decimal cannot hold: the largest it can, same sign (astronomically large or
        # small either way; validation refuses or rounds it like the value sent)
        return b"999999999"
    if before == b"." or data[end : end + 1] in (b".", b"e", b"E"):
        return match.group(0)  # a fraction: already read as a Decimal
    return match.group(0) + b"e0"


def sanitise(piece: bytes, *, non_finite: bool = True) -> bytes:
    """Every guard; `non_finite=False` leaves NaN and Infinity for `non_finite_to_null` (a caller
    whose parser refuses them anyway can apply it later, only to what it could not read)."""
    if non_finite:
        piece = non_finite_to_null(piece)
    if b"\\" in piece and _SURROGATE_HINT.search(piece):
        piece = _LONE_SURROGATE.sub(_fix_surrogate, piece)
    if b"\xed" in piece and _RAW_SURROGATE.search(piece):  # memchr first: the regex is slow
        piece = _RAW_SURROGATE.sub(rb"\\u0000", piece)
    if _may_hold_long_digits(piece):  # a fast pre-check: re is slow on digit runs
        piece = _LONG_DIGITS.sub(_fix_digits, piece)
    return piece


def _may_hold_long_digits(piece: bytes) -> bool:
    """False when `piece` has no run of 300 digits; True when it has one of at least 151."""
    samples = piece[::_STRIDE].translate(_DIGITS_AS_ZERO)
    at = samples.find(b"00")
    while at != -1:
        if piece[at * _STRIDE : (at + 1) * _STRIDE + 1].isdigit():
            return True
        at = samples.find(b"00", at + 1)
    return False


def non_finite_to_null(piece: bytes) -> bytes:
    """NaN, Infinity and -Infinity as values -> null. Whole pieces only (see RUN_BYTES); applying it
    before or after the other guards gives the same bytes (they touch no letter of these words)."""
    if (b"NaN" in piece or b"Infinity" in piece) and _NON_FINITE.search(piece):
        piece = _NON_FINITE.sub(rb"\1null", piece)
    return piece
