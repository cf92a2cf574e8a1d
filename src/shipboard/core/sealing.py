"""Credentials inside a JSON document stored encrypted, the rest of it in the clear.

A document (an environment's ``config``, a deployment's pipeline snapshot) is stored as two
parts:

- ``shown``: the document as the one redaction (``core.redaction.redact``) shows it, so what a
  copied database or a non-admin read holds is exactly what the redaction would let through;
- ``sealed``: ``{JSON pointer (RFC 6901): Fernet token}`` for every value the redaction changed,
  each token the encrypted JSON of the original value (a whole URL, not just its password).

Which values are credentials is decided only by ``redact``: a value is sealed exactly when the
redaction would hide (part of) it. ``unseal`` puts the originals back for what uses them.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator, Mapping
from typing import Any

from shipboard.core.crypto import Keyring
from shipboard.core.redaction import redact

Sealed = dict[str, str]
PathPart = str | int


def pointer(path: tuple[PathPart, ...]) -> str:
    """RFC 6901: ``("steps", 0, "env", "a/b")`` → ``/steps/0/env/a~1b``."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in path)


def _tokens(ptr: str) -> list[str]:
    return [t.replace("~1", "/").replace("~0", "~") for t in ptr.split("/")[1:]]


def credentials(document: Any) -> Iterator[tuple[tuple[PathPart, ...], Any]]:
    """Each (path, value) that the redaction hides in ``document``, outermost first."""
    yield from _differences(document, redact(document), ())


def _differences(
    original: Any, shown: Any, path: tuple[PathPart, ...]
) -> Iterator[tuple[tuple[PathPart, ...], Any]]:
    if original == shown:
        return
    if isinstance(original, dict) and isinstance(shown, dict) and original.keys() == shown.keys():
        for key in original:
            yield from _differences(original[key], shown[key], (*path, key))
        return
    if (
        isinstance(original, list | tuple)
        and isinstance(shown, list)
        and len(original) == len(shown)
    ):
        for index, (a, b) in enumerate(zip(original, shown, strict=True)):
            yield from _differences(a, b, (*path, index))
        return
    yield path, original


def seal(document: dict[str, Any], keyring: Keyring) -> tuple[dict[str, Any], Sealed]:
    """(shown, sealed): the redacted document and its credentials, encrypted by pointer."""
    shown: dict[str, Any] = redact(document)
    sealed = {
        pointer(path): keyring.encrypt(json.dumps(value)) for path, value in credentials(document)
    }
    return shown, sealed


def unseal(shown: Any, sealed: Mapping[str, Any] | None, keyring: Keyring | None) -> Any:
    """The document with its credentials in the clear: for what uses them (steps, healthchecks,
    scrapes, scans, configuration export), never for a response to a non-admin. A pointer that
    no longer leads anywhere in ``shown`` (edited by hand) is skipped."""
    if not sealed:
        return shown
    if keyring is None:
        raise ValueError("sealed credentials need a keyring to be read")
    document = copy.deepcopy(shown)
    for ptr, token in sealed.items():
        if not isinstance(ptr, str) or not isinstance(token, str):
            continue
        parts = _tokens(ptr)
        if not parts:
            continue
        parent = _walk(document, parts[:-1])
        last = parts[-1]
        if isinstance(parent, dict) and last in parent:
            parent[last] = json.loads(keyring.decrypt(token))
        elif isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
            parent[int(last)] = json.loads(keyring.decrypt(token))
    return document


def _walk(document: Any, parts: list[str]) -> Any:
    node = document
    for part in parts:
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def under(sealed: Mapping[str, Any] | None, prefix: tuple[PathPart, ...]) -> Sealed:
    """The sealed values inside the sub-document at ``prefix``, with pointers relative to it
    (a deployment keeps its pipeline's credentials sealed, copied from its environment's)."""
    start = pointer(prefix) + "/"
    return {
        ptr[len(start) - 1 :]: token
        for ptr, token in (sealed or {}).items()
        if isinstance(ptr, str) and isinstance(token, str) and ptr.startswith(start)
    }
