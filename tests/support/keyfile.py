"""A key-file keyring (no SHIPBOARD_SECRET_KEYS) whose file another process rotates, and which
thread reads the file again: the event loop must never be the one."""

from __future__ import annotations

import threading
from pathlib import Path

from fastapi import FastAPI

from shipboard.core.crypto import KEY_FILE_NAME, Keyring, generate_key


def record_key_file_reads(app: FastAPI) -> list[int]:
    """The threads (idents) in which the app's keyring reads its key file again, from now on.
    Adds ``GET /probe/loop-thread``, which answers the ident of the event loop's thread."""
    keyring: Keyring = app.state.keyring
    reload = keyring._reload
    assert reload is not None, "the keyring must come from a key file"
    reads: list[int] = []

    def recorded() -> list[bytes]:
        reads.append(threading.get_ident())
        return reload()

    keyring._reload = recorded

    @app.get("/probe/loop-thread")
    async def loop_thread() -> int:
        return threading.get_ident()

    return reads


def rotate_key_file(home: Path, keyring: Keyring) -> Keyring:
    """What ``shipboard secrets rotate-key`` in another process does to the file: a new key
    first, the old after it. Returns a keyring of both, to re-seal stored values with."""
    old = keyring.keys[0]
    new = generate_key()
    (home / KEY_FILE_NAME).write_text(f"{new}\n{old}\n")
    return Keyring([new.encode(), old.encode()])
