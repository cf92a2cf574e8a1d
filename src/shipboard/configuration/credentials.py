"""Which values of a configuration document are credentials (pure).

A credential never appears in a configuration file: ``export`` writes a `${VAR}` reference in
its place, ``diff`` and ``apply`` refuse a file that spells one out, and a diff shows that it
changed, never its value.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from shipboard.configuration.source import Path

_KEY = re.compile(
    r"(^|_)(password|passwd|secret|token|api_key|apikey|private_key|authorization|credentials?)$",
    re.IGNORECASE,
)
_QUERY_KEY = re.compile(
    r"^(token|access_token|api_key|apikey|key|secret|signature|sig|password|auth)$", re.IGNORECASE
)
# Webhook URLs whose path is the secret (Slack, Discord).
_SECRET_PATH = re.compile(
    r"^https?://(hooks\.slack\.com/services/|(discord|discordapp)\.com/api/webhooks/)",
    re.IGNORECASE,
)
MASK = "***"


def is_credential(path: Path, value: Any) -> bool:
    """True when ``value`` at ``path`` grants access to something."""
    if not isinstance(value, str) or value == "":
        return False
    key = next((p for p in reversed(path) if isinstance(p, str)), "")
    if path[:1] == ("integrations",) and key == "secret":
        return True
    if _KEY.search(key):
        return True
    return is_credential_url(value)


def is_credential_url(value: str) -> bool:
    """A URL that carries a password, a token in its query, or a secret path."""
    if "://" not in value:
        return False
    if _SECRET_PATH.match(value):
        return True
    try:
        parts = urlsplit(value)
        if parts.password:
            return True
        return any(_QUERY_KEY.match(k) and v for k, v in parse_qsl(parts.query))
    except ValueError:
        return False


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
