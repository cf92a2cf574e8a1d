"""Page templates are read from the package once: a page rendered on the event loop does no
file I/O for them (web/render.py)."""

from __future__ import annotations

import os

import pytest

from shipboard.web import render as pages


def test_a_template_used_again_is_not_looked_at_on_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    names = ("overview.html", "base.html")
    for name in names:
        pages.env.get_template(name)  # the first use reads it
    looked: list[str] = []
    getmtime = os.path.getmtime

    def recorded(path: str) -> float:
        looked.append(str(path))
        return getmtime(path)

    monkeypatch.setattr(os.path, "getmtime", recorded)
    for name in names:
        pages.env.get_template(name)
    assert [p for p in looked if p.startswith(str(pages.TEMPLATES))] == []
