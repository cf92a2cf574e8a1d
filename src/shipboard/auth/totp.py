"""TOTP (RFC 6238: HMAC-SHA1, 30-second steps, 6 digits) as authenticator apps implement it.
Pure, so the clock is a parameter."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import struct
from urllib.parse import quote, urlencode

STEP_S = 30
DIGITS = 6
# One step either side: a phone clock a little off still works, a code is good for ~90 s.
DRIFT_STEPS = 1


def new_secret() -> str:
    """160 random bits, base32 without padding, as authenticator apps expect."""
    return base64.b32encode(secrets.token_bytes(20)).decode().rstrip("=")


def code_at(secret: str, unix_time: float) -> str:
    key = base64.b32decode(secret + "=" * (-len(secret) % 8), casefold=True)
    counter = int(unix_time // STEP_S)
    digest = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    number = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(number % 10**DIGITS).zfill(DIGITS)


def step_of(unix_time: float) -> int:
    """The time step (RFC 6238's T) of a moment."""
    return int(unix_time // STEP_S)


def matching_step(
    secret: str, code: str, unix_time: float, *, after: int | None = None
) -> int | None:
    """The time step whose code ``code`` is, within the drift window, or None.

    Steps at or before ``after`` (the last one accepted) never match: a code is good once
    (RFC 6238 §5.2), and an older one than the last accepted is no better.
    """
    code = code.strip().replace(" ", "")
    # isascii: str.isdigit() accepts other scripts' digits, which compare_digest refuses.
    if len(code) != DIGITS or not code.isascii() or not code.isdigit():
        return None
    now = step_of(unix_time)
    for step in range(now - DRIFT_STEPS, now + DRIFT_STEPS + 1):
        matched = hmac.compare_digest(code_at(secret, step * STEP_S), code)
        if matched and (after is None or step > after):
            return step
    return None


def verify(secret: str, code: str, unix_time: float) -> bool:
    """Whether ``code`` is valid now, ignoring replay (see ``matching_step``)."""
    return matching_step(secret, code, unix_time) is not None


def provisioning_uri(secret: str, *, account: str, issuer: str = "Shipboard") -> str:
    label = quote(f"{issuer}:{account}")
    query = urlencode({"secret": secret, "issuer": issuer, "algorithm": "SHA1", "digits": DIGITS})
    return f"otpauth://totp/{label}?{query}"


def qr_svg(uri: str) -> str:
    """The URI as an inline SVG QR code (no image request, no external service)."""
    import io

    import segno

    out = io.BytesIO()
    segno.make(uri, error="m").save(
        out, kind="svg", scale=4, xmldecl=False, svgns=True, title="QR code"
    )
    return out.getvalue().decode()
