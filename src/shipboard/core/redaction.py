"""One redaction for every read path: API responses, pages, CLI output, logs, deployment logs.

What it hides, wherever the value sits (dicts and lists at any depth, free text):

- values under keys that name a credential (``password``, ``token``, ``secret``, ``api_key``,
  ``api_token``, ``authorization``, ``bearer_token``, ``private_key`` …, alone or as the end of
  a longer key such as ``smtp_password`` or ``resend_api_key``), and ``headers``
  (``prometheus_headers``, ``remote_write_headers``: tenants and API keys for a store);
- in every URL, also inside longer text: the password of ``user:password@``; the values of
  query parameters that carry credentials (``?token=``, ``?key=``, ``?access_token=``,
  ``?api_key=``, ``?sig=`` …); and the secret path of webhook URLs that are their own credential
  (Slack's ``hooks.slack.com/services/…``, Discord's ``/api/webhooks/<id>/<token>``).

Public keys that only look like credentials (``stripe_publishable_key``, ``supabase_anon_key``)
are left alone: they are meant to be seen.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

REDACTED = "***"

_SECRET_KEY = re.compile(
    r"(?:password|passwd)$|(?:^|[_.\-])(?:pwd|secret|token|api_?key|apikey|authorization|auth_header"
    r"|bearer_token|access_token|refresh_token|private_key|client_secret|credentials?|headers)$",
    re.IGNORECASE,
)
_SECRET_PARAM = re.compile(
    r"^(?:token|key|api_?key|apikey|access_token|auth|authorization|secret|password|passwd"
    r"|sig|signature|client_secret|code|private_token|x-api-key)$",
    re.IGNORECASE,
)
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]{0,15}://[^\s\"'<>`]+")
_USERINFO = re.compile(r"^([^:/]+://[^:/@\s]*:)[^/@\s]*@")
_SLACK = re.compile(r"^(/services/)[^?#]+", re.IGNORECASE)
_DISCORD = re.compile(r"^(/api(?:/v\d+)?/webhooks/[^/]+/)[^/?#]+", re.IGNORECASE)


def is_secret_key(key: str) -> bool:
    """Whether a mapping key names a credential."""
    return bool(_SECRET_KEY.search(key))


def redact(value: Any) -> Any:
    """A copy of ``value`` (dicts, lists, text, at any depth) with every credential replaced
    by ``***`` (see the module's docstring)."""
    if isinstance(value, dict):
        return {
            key: (
                REDACTED
                if isinstance(key, str) and is_secret_key(key) and value[key] not in (None, "")
                else redact(value[key])
            )
            for key in value
        }
    if isinstance(value, list | tuple):
        return [redact(item) for item in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


def redact_text(text: str) -> str:
    """``text`` with the credentials of every URL in it replaced by ``***``."""
    if "://" not in text:
        return text
    return _URL.sub(lambda m: redact_url(m.group(0)), text)


def redact_url(url: str) -> str:
    """One URL without its credentials: the password of its userinfo, credential query values
    and the secret path of Slack and Discord webhooks."""
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
    except ValueError:
        # Not a URL that parses (text around it, like "x.example]y[/link]"): only a password
        # in what would be its userinfo is hidden; the rest is text, shown as written.
        return _USERINFO.sub(lambda m: m.group(1) + REDACTED + "@", url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user, colon, _password = userinfo.partition(":")
        netloc = f"{user}:{REDACTED}@{hostport}" if colon else f"{REDACTED}@{hostport}"
    path = parts.path
    if host == "hooks.slack.com" or host.endswith(".slack.com"):
        path = _SLACK.sub(lambda m: m.group(1) + REDACTED, path)
    if host in {"discord.com", "discordapp.com"} or host.endswith(
        (".discord.com", ".discordapp.com")
    ):
        path = _DISCORD.sub(lambda m: m.group(1) + REDACTED, path)
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(_SECRET_PARAM.match(name) for name, _ in pairs):
            query = urlencode(
                [(name, REDACTED if _SECRET_PARAM.match(name) else v) for name, v in pairs],
                safe="*",
            )
    if (netloc, path, query) == (parts.netloc, parts.path, parts.query):
        return url
    return urlunsplit(parts._replace(netloc=netloc, path=path, query=query))


def redact_event(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> dict[str, Any]:
    """A structlog processor: the same redaction for every field of every log line."""
    return {
        key: (REDACTED if is_secret_key(key) and value not in (None, "") else redact(value))
        for key, value in event.items()
    }


def redact_credentials(
    text: str,
    *,
    token: str | None = None,
    username: str | None = None,
    password: str | None = None,
    extra: Iterable[str] = (),
) -> str:
    """``text`` an outside server wrote (an error body), without the credentials we sent it: a
    proxy or a misconfigured store may echo the request's headers back — the token, the
    password, the Base64 ``user:password`` of Basic auth, or ``extra`` values (the extra headers
    a store wants, such as an API key). URLs in it lose theirs too (:func:`redact_text`).
    Values under four characters are left alone: replacing every "1" of a tenant "1" would
    garble the text and hide nothing worth hiding."""
    secrets = [token, password, *extra]
    if username is not None:
        pair = f"{username}:{password or ''}".encode()
        secrets.append(base64.b64encode(pair).decode())
    # Longest first: a secret inside another is not left half-replaced.
    for secret in sorted((s for s in secrets if s and len(s) >= 4), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return redact_text(text)
