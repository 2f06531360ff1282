"""Shared pieces of the loopback CEX venues: fixture loading, an aiohttp app runner on
127.0.0.1 port 0 serving REST and WebSocket on one port, one-shot fault injection, and the
venue-side maintenance / liquidation arithmetic the mocks publish as the venue's own figures
(written from the venues' documents, independently of ``monitor.margin``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

CEX = Path(__file__).parents[2] / "fixtures" / "cex"


def shape(venue: str, name: str) -> Any:
    """A response shape kept under tests/fixtures/cex/<venue>/ (see its README)."""
    return json.loads((CEX / venue / name).read_text())


def same_keys(mock: Any, real: Any, path: str = "") -> list[str]:
    """Keys of ``real`` (a documented shape) missing from ``mock``, recursively through the
    first element of lists; an empty list means the mock speaks the documented shape."""
    missing: list[str] = []
    if isinstance(real, dict):
        if not isinstance(mock, dict):
            return [f"{path}: expected an object"]
        for k, v in real.items():
            if k not in mock:
                missing.append(f"{path}.{k}")
            else:
                missing.extend(same_keys(mock[k], v, f"{path}.{k}"))
    elif isinstance(real, list) and real:
        if not isinstance(mock, list):
            return [f"{path}: expected a list"]
        if mock:
            missing.extend(same_keys(mock[0], real[0], f"{path}[0]"))
    return missing


@dataclass
class Fault:
    """Answer the next request whose path starts with ``prefix`` with this instead."""

    prefix: str
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    times: int = 1


@dataclass
class Bracket:
    floor: float
    rate: float
    deduction: float


def bracket_of(brackets: list[Bracket], notional: float) -> int:
    i = 0
    for j, b in enumerate(brackets):
        if notional >= b.floor:
            i = j
    return i


def faq_liquidation_price(
    *,
    size: float,
    entry: float,
    wallet: float,
    other_mm: float,
    other_upnl: float,
    brackets: list[Bracket],
    mark: float,
) -> float | None:
    """Binance FAQ "How to Calculate Liquidation Price of USDⓈ-M Futures Contracts"::

        LP = (WB − TMM₁ + UPNL₁ + cum_B − side·q·EP) / (q·MMR_B − side·q)

    with the bracket of the current notional, re-computed with the bracket the result falls
    in when that differs (the FAQ's rule), as the venue publishes it."""
    q = abs(size)
    side = 1 if size > 0 else -1
    b = bracket_of(brackets, q * mark)
    for _ in range(len(brackets) + 1):
        br = brackets[b]
        lp = (wallet - other_mm + other_upnl + br.deduction - side * q * entry) / (
            q * br.rate - side * q
        )
        nb = bracket_of(brackets, q * max(lp, 0.0))
        if nb == b:
            break
        b = nb
    return lp if lp > 0 else None


class Loopback:
    """An aiohttp app on 127.0.0.1:0 with fault injection and request records."""

    def __init__(self) -> None:
        self.app = web.Application(middlewares=[self._faults_mw])
        self.faults: list[Fault] = []
        self.requests: list[tuple[str, str]] = []
        self.port = 0
        self._runner: web.AppRunner | None = None
        self.sockets: list[web.WebSocketResponse] = []
        self.frozen = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def fault(self, prefix: str, status: int, body: Any, *, times: int = 1, **headers: str) -> None:
        self.faults.append(Fault(prefix, status, body, dict(headers), times))

    @web.middleware
    async def _faults_mw(self, request: web.Request, handler: Callable[..., Any]) -> Any:
        self.requests.append((request.method, request.path))
        for f in self.faults:
            if request.path.startswith(f.prefix) and f.times > 0:
                f.times -= 1
                return web.json_response(f.body, status=f.status, headers=f.headers)
        return await handler(request)

    def calls(self, method: str, path: str) -> int:
        return sum(1 for m, p in self.requests if m == method and p == path)

    async def push(self, payload: Any) -> None:
        text = payload if isinstance(payload, str) else json.dumps(payload)
        for ws in list(self.sockets):
            if not ws.closed:
                with contextlib.suppress(Exception):
                    await ws.send_str(text)

    async def hold(
        self, ws: web.WebSocketResponse, on_text: Callable[[str], Any] | None = None
    ) -> None:
        """Read client frames until it closes; while ``frozen`` stop reading, so pings go
        unanswered and nothing is sent (a silent stream with the TCP connection open)."""
        self.sockets.append(ws)
        try:
            while not ws.closed:
                if self.frozen:
                    await asyncio.sleep(0.02)
                    continue
                try:
                    msg = await ws.receive(timeout=0.05)
                except TimeoutError:
                    continue
                if msg.type == web.WSMsgType.TEXT and on_text is not None:
                    reply = on_text(msg.data)
                    if asyncio.iscoroutine(reply):
                        await reply
                elif msg.type in (web.WSMsgType.CLOSE, web.WSMsgType.CLOSED, web.WSMsgType.ERROR):
                    break
        finally:
            self.sockets.remove(ws)

    async def drop_all(self) -> None:
        for ws in list(self.sockets):
            with contextlib.suppress(Exception):
                await ws.close(code=1001, message=b"going away")

    async def __aenter__(self) -> Loopback:
        self._runner = web.AppRunner(self.app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.drop_all()
        if self._runner is not None:
            await self._runner.cleanup()


def now_ms() -> int:
    return int(time.time() * 1000)
