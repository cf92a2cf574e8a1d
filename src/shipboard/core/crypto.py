"""Encryption of secret values at rest with Fernet (AES-128-CBC + HMAC-SHA256).

Keys come from ``SHIPBOARD_SECRET_KEYS`` (comma-separated; the first encrypts, all decrypt, so a
new key can be put first while old values stay readable), or from a key file generated on first
use in ``SHIPBOARD_HOME`` with mode 0600 (one key a line, the first encrypts).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import threading
from collections.abc import Callable
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from shipboard.core.errors import ShipboardError
from shipboard.core.files import private_dir

KEY_FILE_NAME = "secret.key"


class KeysUnusable(ShipboardError):
    status_code = 500
    title = "Encryption keys unusable"
    type_slug = "keys-unusable"


class Keyring:
    def __init__(
        self,
        keys: list[bytes],
        *,
        key_file: Path | None = None,
        reload: Callable[[], list[bytes]] | None = None,
    ) -> None:
        self.key_file = key_file
        self._reload = reload
        self._lock = threading.Lock()
        self._use(keys)

    def _use(self, keys: list[bytes]) -> None:
        if not keys:
            raise KeysUnusable("no encryption key configured")
        try:
            fernets = [Fernet(k) for k in keys]
        except (ValueError, TypeError) as exc:
            raise KeysUnusable(
                "SHIPBOARD_SECRET_KEYS holds a value that is not a Fernet key "
                "(32 url-safe base64-encoded bytes; make one with `shipboard secrets generate-key`)"
            ) from exc
        self._keys = [k.decode() if isinstance(k, bytes) else str(k) for k in keys]
        self._fernets = fernets
        self._multi = MultiFernet(fernets)

    @classmethod
    def from_settings(cls, secret_keys: str | None, home: Path) -> Keyring:
        if secret_keys:
            return cls(split_keys(secret_keys.encode()))
        path = home / KEY_FILE_NAME
        keys = split_keys(load_or_create_key_file(home))
        return cls(keys, key_file=path, reload=lambda: split_keys(path.read_bytes()))

    @property
    def keys(self) -> list[str]:
        """The key material, primary first: for `secrets rotate-key` only, never for output."""
        return list(self._keys)

    def with_primary(self, key: str) -> Keyring:
        """A keyring that encrypts with ``key`` and still decrypts with every key of this one."""
        return Keyring(
            [key.encode(), *(k.encode() for k in self._keys if k != key)], key_file=self.key_file
        )

    def encrypt(self, plaintext: str) -> str:
        return self._multi.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._multi.decrypt(token.encode()).decode()
        except InvalidToken:
            # Another process may have rotated the key file since this one read it.
            if self._reloaded():
                with contextlib.suppress(InvalidToken):
                    return self._multi.decrypt(token.encode()).decode()
        raise KeysUnusable("a stored secret cannot be decrypted with the configured keys")

    def rotate(self, token: str) -> str:
        """Re-encrypt under the primary key."""
        try:
            return self._multi.rotate(token.encode()).decode()
        except InvalidToken as exc:
            raise KeysUnusable(
                "a stored secret cannot be decrypted with the configured keys"
            ) from exc

    def key_index(self, token: str) -> int | None:
        """Which configured key (0 = primary) decrypts ``token``; None when none does."""
        for index, fernet in enumerate(self._fernets):
            try:
                fernet.decrypt(token.encode())
            except InvalidToken:
                continue
            return index
        return None

    def derive(self, purpose: str, *, key_index: int = 0) -> bytes:
        """A key for ``purpose`` derived from the primary key (or another configured one) with
        HMAC-SHA256, so a keyed hash needs no key of its own and no Fernet key leaves here."""
        key = self._keys[key_index].encode()
        return hmac.new(key, purpose.encode(), hashlib.sha256).digest()

    def _reloaded(self) -> bool:
        if self._reload is None:
            return False
        with self._lock:
            try:
                keys = self._reload()
            except OSError:
                return False
            if [k.decode() for k in keys] == self._keys:
                return False
            self._use(keys)
            return True


def key_fingerprint(key: str) -> str:
    """A short, one-way name for a key, to tell keys apart in output and audit details."""
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def generate_key() -> str:
    return Fernet.generate_key().decode()


def split_keys(raw: bytes) -> list[bytes]:
    """Keys from a comma- or line-separated list, in order, blanks dropped."""
    return [k.strip() for k in raw.replace(b",", b"\n").splitlines() if k.strip()]


def load_or_create_key_file(home: Path) -> bytes:
    path = home / KEY_FILE_NAME
    if path.exists():
        return path.read_bytes().strip()
    private_dir(home)
    key = Fernet.generate_key()
    # O_EXCL: two processes starting at once must not each write a different key.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as fh:
        fh.write(key + b"\n")
    return key


def write_key_file(path: Path, keys: list[str]) -> None:
    """Replace the key file atomically (a reader sees the old file or the new, never half of
    one), mode 0600 from the start, synced to disk before it replaces the old one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write("".join(f"{k}\n" for k in keys).encode())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
