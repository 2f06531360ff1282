"""The dead-man heartbeat against a loopback HTTP server; time from a FakeClock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from structlog.testing import capture_logs

from monitor.clock import FakeClock
from monitor.errors import ConfigError
from monitor.notify.heartbeat import Heartbeat, parse_heartbeat, start

UUID = "5bf66975-d4c7-4bf5-bcc8-b8d8a82ea278"


class Watcher:
    """A healthchecks.io-style ping endpoint: ``GET /ping/<uuid>``; ``status`` to answer."""

    def __init__(self) -> None:
        self.pings: list[str] = []
        self.status = 200
        self.app = web.Application()
        self.app.router.add_get("/ping/{uuid}", self._ping)
        self.runner = web.AppRunner(self.app)
        self.port = 0

    async def _ping(self, request: web.Request) -> web.Response:
        self.pings.append(request.match_info["uuid"])
        return web.Response(status=self.status, text="OK")

    async def start(self) -> None:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/ping/${{HC_UUID}}"


@pytest.fixture
async def watcher() -> AsyncIterator[Watcher]:
    w = Watcher()
    await w.start()
    yield w
    await w.runner.cleanup()


async def settle(cond: Any) -> None:
    for _ in range(300):
        if cond():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition never met")


async def test_pings_every_interval_while_healthy_and_stops_when_not(watcher: Watcher) -> None:
    config = parse_heartbeat(
        {"heartbeat_url": watcher.url(), "heartbeat_interval": "30s"},
        "m.toml",
        env={"HC_UUID": UUID},
        credentials_dir=None,
    )
    assert config is not None and config.interval == 30.0
    assert UUID not in config.redacted and UUID not in repr(config)
    clock = FakeClock()
    healthy = True
    task = start(config, lambda: healthy, clock)
    try:
        await settle(lambda: len(watcher.pings) == 1)  # at start
        clock.advance(29.0)
        await asyncio.sleep(0.05)
        assert len(watcher.pings) == 1  # not before the interval
        clock.advance(1.0)
        await settle(lambda: len(watcher.pings) == 2)  # 30 s later
        healthy = False  # the engine is stuck: no more pings, the watcher alerts
        with capture_logs() as logs:
            clock.advance(30.0)
            await settle(lambda: any(e["event"] == "heartbeat.skipped" for e in logs))
        clock.advance(30.0)
        await asyncio.sleep(0.05)
        assert len(watcher.pings) == 2
        healthy = True
        clock.advance(30.0)
        await settle(lambda: len(watcher.pings) == 3)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert watcher.pings == [UUID] * 3


async def test_a_failing_watcher_is_logged_without_the_secret_and_the_loop_goes_on(
    watcher: Watcher,
) -> None:
    watcher.status = 500
    clock = FakeClock()
    beat = Heartbeat(
        f"http://127.0.0.1:{watcher.port}/ping/{UUID}",
        10.0,
        lambda: True,
        clock,
        timeout=2.0,
        secrets=(UUID,),
    )
    with capture_logs() as logs:
        task = asyncio.create_task(beat.run())
        try:
            await settle(lambda: beat.failed == 1)
            watcher.status = 200
            clock.advance(10.0)
            await settle(lambda: beat.sent == 1)
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
    failed = [e for e in logs if e["event"] == "heartbeat.failed"]
    assert len(failed) == 1 and "500" in failed[0]["error"]
    assert UUID not in str(logs)
    assert len(watcher.pings) == 2


async def test_an_unreachable_watcher_never_raises() -> None:
    clock = FakeClock()
    beat = Heartbeat("http://127.0.0.1:9/ping/x", 10.0, lambda: True, clock, timeout=1.0)
    import aiohttp

    async with aiohttp.ClientSession() as session:
        assert await beat.beat(session) is False
    assert beat.failed == 1


@pytest.mark.parametrize(
    ("table", "field", "words"),
    [
        ({"heartbeat_url": "ftp://x/y"}, "daemon.heartbeat_url", "http:// or https://"),
        ({"heartbeat_url": 5}, "daemon.heartbeat_url", "URL string"),
        ({"heartbeat_interval": 60}, "daemon.heartbeat_interval", "needs daemon.heartbeat_url"),
        (
            {"heartbeat_url": "https://h/p", "heartbeat_interval": 0.5},
            "daemon.heartbeat_interval",
            "at least 1 s",
        ),
    ],
)
def test_config_errors_name_the_key(table: dict[str, object], field: str, words: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_heartbeat(table, "m.toml", env={}, credentials_dir=None)
    assert err.value.field == field and words in err.value.problem


def test_no_url_no_heartbeat() -> None:
    assert parse_heartbeat({}, "m.toml", env={}, credentials_dir=None) is None
