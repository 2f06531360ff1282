"""Shared test helpers: paths to the fixtures copied from the venues' documentation."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
FEEDS = FIXTURES / "feeds"


@pytest.fixture
def feeds_dir() -> Path:
    return FEEDS


@pytest.fixture(autouse=True)
def _no_logging_left_behind() -> Iterator[None]:
    """Commands run in-process configure logging onto the test's captured stdout; undo it so
    a later test never writes to a closed capture."""
    yield
    from monitor.logs import reset_logging

    reset_logging()
