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


def verify(secret: str, code: str, unix_time: float) -> bool:
    code = code.strip().replace(" ", "")
    # isascii: str.isdigit() accepts other scripts' digits, which compare_digest refuses.
    if len(code) != DIGITS or not code.isascii() or not code.isdigit():
        return False
    return any(
        hmac.compare_digest(code_at(secret, unix_time + drift * STEP_S), code)
        for drift in range(-DRIFT_STEPS, DRIFT_STEPS + 1)
    )


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
