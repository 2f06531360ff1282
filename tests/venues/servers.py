"""Loopback venue servers for the feed tests: real ``websockets`` and ``aiohttp`` servers on
127.0.0.1 speaking the venues' wire formats (fixtures copied from the venue docs), with
fault injection: abrupt close (1006), clean close (1001), stall with the TCP connection open,
garbage / wrong-typed / error frames, refused connections, unanswered pings."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from websockets.asyncio.server import Server, ServerConnection, serve

FEEDS = Path(__file__).parents[1] / "fixtures" / "feeds"


def fixture(venue: str, name: str) -> Any:
    return json.loads((FEEDS / venue / name).read_text())


def fixture_text(venue: str, name: str) -> str:
    return (FEEDS / venue / name).read_text()


async def until(cond: Callable[[], bool], limit: float = 5.0, what: str = "") -> None:
    """Wait (real time) until ``cond()`` holds; fail the test after ``limit`` seconds."""
    deadline = time.monotonic() + limit
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or cond}")
        await asyncio.sleep(0.01)


Handler = Callable[["Conn"], Awaitable[None]]


@dataclass
class Conn:
    """One accepted connection: what the client sent, and the socket to answer on."""

    ws: ServerConnection
    index: int
    received: list[str] = field(default_factory=list)

    def received_json(self) -> list[Any]:
        out = []
        for m in self.received:
            try:
                out.append(json.loads(m))
            except ValueError:
                out.append(m)
        return out

    async def send(self, payload: Any) -> None:
        await self.ws.send(payload if isinstance(payload, str) else json.dumps(payload))

    def abort(self) -> None:
        """Drop the TCP connection without a close frame: the client sees 1006."""
        transport = self.ws.transport
        transport.abort()

    async def close(self, code: int = 1001, reason: str = "going away") -> None:
        await self.ws.close(code, reason)


class WsServer:
    """A websockets server on 127.0.0.1 whose per-connection behaviour is ``handler``."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.conns: list[Conn] = []
        self.port = 0
        self._server: Server | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    async def start(self) -> None:
        self._server = await serve(self._handle, "127.0.0.1", self.port, close_timeout=0.5)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and close every connection (clients then get refused)."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _handle(self, ws: ServerConnection) -> None:
        conn = Conn(ws, len(self.conns))
        self.conns.append(conn)
        with contextlib.suppress(Exception):
            await self.handler(conn)

    async def __aenter__(self) -> WsServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


class HttpServer:
    """An aiohttp server on 127.0.0.1 with the given routes; records request bodies."""

    def __init__(self) -> None:
        self.app = web.Application()
        self.requests: list[tuple[str, str, str]] = []  # (method, path, body)
        self.port = 0
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def route(self, method: str, path: str, respond: Callable[[str], tuple[int, str]]) -> None:
        async def handle(request: web.Request) -> web.Response:
            body = await request.text()
            self.requests.append((request.method, request.path, body))
            status, text = respond(body)
            return web.Response(status=status, text=text, content_type="application/json")

        self.app.router.add_route(method, path, handle)

    async def __aenter__(self) -> HttpServer:
        self._runner = web.AppRunner(self.app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


async def run_feed(feed: Any, body: Callable[[list[Any]], Awaitable[None]]) -> list[Any]:
    """Run ``feed`` collecting its events while ``body(events)`` drives the scenario."""
    events: list[Any] = []
    task = asyncio.create_task(feed.run(events.append))
    try:
        await body(events)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task  # a feed that died re-raises its error here
    return events
