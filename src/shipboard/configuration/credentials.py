"""Which values of a configuration document are credentials (pure).

A credential never appears in a configuration file: ``export`` writes a `${VAR}` reference in
its place, ``diff`` and ``apply`` refuse a file that spells one out, and a diff shows that it
changed, never its value.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from shipboard.configuration.source import Path
from shipboard.core.redaction import is_secret_key, redact_url

MASK = "***"


def is_credential(path: Path, value: Any) -> bool:
    """True when ``value`` at ``path`` grants access to something."""
    if not isinstance(value, str) or value == "":
        return False
    key = next((p for p in reversed(path) if isinstance(p, str)), "")
    if path[:1] == ("integrations",) and key == "secret":
        return True
    if is_secret_key(key):
        return True
    return is_credential_url(value)


def is_credential_url(value: str) -> bool:
    """A URL that carries a password, or anything else the one redaction (core/redaction.py)
    would hide: a credential in its query, the secret path of a Slack or Discord webhook. An
    empty password (``redis://:${PW}@cache`` once its reference is taken out) is none."""
    if "://" not in value:
        return False
    try:
        parts = urlsplit(value)
        if parts.password:
            return True
        bare = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
    except ValueError:
        return False
    return redact_url(bare) != bare


def variable_name(path: Path) -> str:
    """The environment variable ``export`` names for the credential at ``path``:
    ``environments.production.config.database_url`` → ``PRODUCTION_DATABASE_URL``."""
    parts = [str(p) for p in path]
    if parts[:1] == ["environments"]:
        parts = [parts[1], *[p for p in parts[2:] if p != "config"]]
    elif parts[:1] in (["channels"], ["alert_rules"]):
        parts = ["channel" if parts[0] == "channels" else "rule", *parts[1:]]
        parts = [p for p in parts if p != "config"]
    elif parts[:1] == ["integrations"]:
        parts = parts[1:]
        if parts[-1:] == ["secret"]:
            parts[-1] = "webhook_secret"
    name = re.sub(r"[^A-Za-z0-9]+", "_", "_".join(parts)).strip("_").upper()
    return name if name and not name[0].isdigit() else f"SHIPBOARD_{name}"
