"""The stand-in names erased users get: identity knows them, so that a token or JWT of an erased
user is recognised as such (not as an unknown name) and erasure can rewrite history."""

from __future__ import annotations

import hashlib
import hmac

from shipboard.core.crypto import Keyring

PSEUDONYM_PURPOSE = "shipboard.pseudonym.v1"


def pseudonym(keyring: Keyring, name: str) -> str:
    """The stable stand-in for ``name``: same name and primary key, same pseudonym."""
    return _pseudonym(keyring.derive(PSEUDONYM_PURPOSE), name)


def pseudonyms(keyring: Keyring, name: str) -> list[str]:
    """The pseudonyms ``name`` would have under each configured key (primary first): one made
    before a key rotation is still recognised while the old key stays configured."""
    return [
        _pseudonym(keyring.derive(PSEUDONYM_PURPOSE, key_index=i), name)
        for i in range(len(keyring.keys))
    ]


def _pseudonym(key: bytes, name: str) -> str:
    return f"user-{hmac.new(key, name.encode(), hashlib.sha256).hexdigest()[:12]}"
