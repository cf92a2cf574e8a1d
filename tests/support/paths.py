"""Where things are in the checkout, wherever a test module sits under ``tests/``."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "shipboard"
DOCS = ROOT / "docs"
FIXTURES = ROOT / "tests" / "fixtures"
