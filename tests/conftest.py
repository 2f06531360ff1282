"""Shared test helpers: paths to the fixtures copied from the venues' documentation."""

from __future__ import annotations

from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
FEEDS = FIXTURES / "feeds"


@pytest.fixture
def feeds_dir() -> Path:
    return FEEDS
