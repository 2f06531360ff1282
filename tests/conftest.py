"""Shared test helpers: paths to the fixtures copied from the venues' documentation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

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


@pytest.fixture
async def webhook() -> AsyncIterator[Any]:
    """A loopback HTTP server receiving ``json://`` posts (tests/notify/conftest.py)."""
    from tests.notify.conftest import WebhookServer

    srv = WebhookServer()
    await srv.start()
    yield srv
    await srv.stop()


@pytest.fixture
async def smtp() -> AsyncIterator[Any]:
    """aiosmtpd on a free loopback port (its Controller cannot take port 0)."""
    from aiosmtpd.controller import Controller

    from tests.notify.conftest import SmtpServer, free_port

    handler = SmtpServer(free_port())
    controller = Controller(handler, hostname="127.0.0.1", port=handler.port)
    await asyncio.to_thread(controller.start)
    yield handler
    await asyncio.to_thread(controller.stop)
