"""Extra HTTP headers the user's metrics store wants on every request, as Prometheus'
``remote_write`` ``headers:`` gives them: Mimir's and Cortex's ``X-Scope-OrgID``, Thanos
Receive's ``THANOS-TENANT``, a gateway's API key (``SHIPBOARD_PROMETHEUS_HEADERS``,
``SHIPBOARD_REMOTE_WRITE_HEADERS``).

Written ``Name=value,Name2=value2`` like Shipboard's other list settings, or as a JSON object
(``{"Name": "value"}``) for a value that holds a comma. Everything is checked when the process
starts: a name is an RFC 9110 token, a value is visible ASCII (no CR/LF, so no header can be
smuggled in), and the headers Shipboard sets itself — or that belong to the connection — are
refused with the setting to use instead. Values may be credentials: no message here ever
contains one.
"""

from __future__ import annotations

import re

import orjson

MAX_HEADERS = 32
MAX_VALUE_CHARS = 4096
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Visible ASCII, spaces and tabs inside (RFC 9110 field-value, without obs-text): httpx sends
# str values as ASCII, so anything else would fail at the first request instead of at start.
_VALUE = re.compile(r"[\x21-\x7e]([\x20-\x7e\t]*[\x21-\x7e])?")
_CONNECTION = "belongs to the HTTP connection; Shipboard's client sets it"


def _refused(prefix: str) -> dict[str, str]:
    """Header (lower case) → why it may not be set, and what to set instead."""
    itself = "Shipboard sets it itself"
    return {
        "authorization": f"use {prefix}_BEARER_TOKEN, or {prefix}_USERNAME and {prefix}_PASSWORD",
        "proxy-authorization": "a proxy's credentials go in its URL "
        "(HTTPS_PROXY=http://user:password@proxy:3128)",
        "host": f"it comes from {prefix}_URL",
        "content-type": itself,
        "content-encoding": itself,
        "content-length": itself,
        "accept-encoding": itself,
        "user-agent": itself,
        "x-prometheus-remote-write-version": itself,
        "x-prometheus-remote-read-version": itself,
        "connection": _CONNECTION,
        "keep-alive": _CONNECTION,
        "transfer-encoding": _CONNECTION,
        "te": _CONNECTION,
        "trailer": _CONNECTION,
        "upgrade": _CONNECTION,
        "proxy-connection": _CONNECTION,
        "proxy-authenticate": "it is a response header",
        "www-authenticate": "it is a response header",
    }


def parse(text: str | None, *, setting: str, prefix: str) -> tuple[tuple[str, str], ...]:
    """The headers ``text`` gives, in order, as (name, value) pairs. ``setting`` names the
    variable in messages; ``prefix`` (``SHIPBOARD_PROMETHEUS``) is where the settings to use
    instead live. Raises ``ValueError`` saying what is wrong, never echoing a value."""
    if text is None or not text.strip():
        return ()
    raw = _entries(text.strip(), setting)
    if len(raw) > MAX_HEADERS:
        raise ValueError(f"{setting} has {len(raw)} headers; at most {MAX_HEADERS}")
    refused = _refused(prefix)
    seen: dict[str, str] = {}
    out: list[tuple[str, str]] = []
    for number, (name, value) in enumerate(raw, start=1):
        if not _TOKEN.fullmatch(name):
            # Not echoed: a malformed entry may be a value typed where the name goes.
            raise ValueError(
                f"{setting}: header {number}'s name is not a valid header name (letters, "
                "digits and !#$%&'*+-.^_`|~, nothing else)"
            )
        lower = name.lower()
        if lower in refused:
            raise ValueError(f"{setting} may not set {name}: {refused[lower]}")
        if lower in seen:
            raise ValueError(f"{setting} names {name} twice (header names ignore case)")
        if len(value) > MAX_VALUE_CHARS:
            raise ValueError(f"{setting}: {name}'s value is over {MAX_VALUE_CHARS} characters")
        if "\r" in value or "\n" in value:
            raise ValueError(f"{setting}: {name}'s value holds a line break (CR or LF)")
        if not _VALUE.fullmatch(value):
            raise ValueError(
                f"{setting}: {name}'s value must be printable ASCII and not empty (no control "
                "characters)"
            )
        seen[lower] = name
        out.append((name, value))
    return tuple(out)


def _entries(text: str, setting: str) -> list[tuple[str, str]]:
    if text.startswith("{"):
        try:
            document = orjson.loads(text)
        except orjson.JSONDecodeError:
            raise ValueError(f"{setting} starts with {{ but is not a JSON object") from None
        if not isinstance(document, dict):
            raise ValueError(f"{setting} starts with {{ but is not a JSON object")
        for number, value in enumerate(document.values(), start=1):
            if not isinstance(value, str):
                raise ValueError(f"{setting}: header {number}'s value must be a JSON string")
        return [(name, value.strip()) for name, value in document.items()]
    out = []
    for number, item in enumerate((i for i in text.split(",") if i.strip()), start=1):
        name, equals, value = item.partition("=")
        if not equals:
            raise ValueError(
                f"{setting}: header {number} has no '=' (write Name=value,Name2=value2, or a "
                "JSON object for values with commas)"
            )
        out.append((name.strip(), value.strip()))
    return out
