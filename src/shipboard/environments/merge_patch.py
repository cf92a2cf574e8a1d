"""JSON Merge Patch (RFC 7396), as a pure function."""

from __future__ import annotations

from typing import Any


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def merge_patch_between(source: Any, target: Any) -> Any:
    """The merge patch that turns ``source`` into ``target`` (which must hold no nulls, as a
    merge patch cannot set one): ``merge_patch(source, merge_patch_between(source, target))``
    equals ``target``."""
    if not isinstance(source, dict) or not isinstance(target, dict):
        return target
    patch: dict[str, Any] = {key: None for key in source if key not in target}
    for key, value in target.items():
        if key not in source:
            patch[key] = value
        elif source[key] != value:
            patch[key] = merge_patch_between(source[key], value)
    return patch
