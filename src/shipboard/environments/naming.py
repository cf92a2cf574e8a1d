"""How a name another tool sends is matched to one of Shipboard's environments. Pure.

One rule for every foreign name (a webhook's environment, an OTLP resource's
``deployment.environment.name``): the same name ignoring case, since people write `Production`
and `STAGING` for what Shipboard calls `production` and `staging`.
"""

from __future__ import annotations

from collections.abc import Iterable


def find_environment(name: str, ours: Iterable[str]) -> str | None:
    """Our environment called ``name`` ignoring case, or None."""
    folded = name.casefold()
    return next((env for env in ours if env.casefold() == folded), None)
