"""Encryption of secret values at rest with Fernet (AES-128-CBC + HMAC-SHA256).

Keys come from ``SHIPBOARD_SECRET_KEYS`` (comma-separated; the first encrypts, all decrypt, so a
new key can be put first while old values stay readable), or from a key file generated on first
use in ``SHIPBOARD_HOME`` with mode 0600.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from shipboard.core.errors import ShipboardError

KEY_FILE_NAME = "secret.key"


class KeysUnusable(ShipboardError):
    status_code = 500
    title = "Encryption keys unusable"
    type_slug = "keys-unusable"


class Keyring:
    def __init__(self, keys: list[bytes]) -> None:
        if not keys:
            raise KeysUnusable("no encryption key configured")
        try:
            self._fernets = [Fernet(k) for k in keys]
        except (ValueError, TypeError) as exc:
            raise KeysUnusable(
                "SHIPBOARD_SECRET_KEYS holds a value that is not a Fernet key "
                "(32 url-safe base64-encoded bytes; make one with `shipboard secrets generate-key`)"
            ) from exc
        self._multi = MultiFernet(self._fernets)

    @classmethod
    def from_settings(cls, secret_keys: str | None, home: Path) -> Keyring:
        if secret_keys:
            return cls([k.strip().encode() for k in secret_keys.split(",") if k.strip()])
        return cls([load_or_create_key_file(home)])

    def encrypt(self, plaintext: str) -> str:
        return self._multi.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._multi.decrypt(token.encode()).decode()
        except InvalidToken as exc:
            raise KeysUnusable(
                "a stored secret cannot be decrypted with the configured keys"
            ) from exc

    def rotate(self, token: str) -> str:
        """Re-encrypt under the primary key."""
        return self._multi.rotate(token.encode()).decode()


def generate_key() -> str:
    return Fernet.generate_key().decode()


def load_or_create_key_file(home: Path) -> bytes:
    path = home / KEY_FILE_NAME
    if path.exists():
        return path.read_bytes().strip()
    home.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key()
    # O_EXCL: two processes starting at once must not each write a different key.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as fh:
        fh.write(key + b"\n")
    return key
