"""The shared WebSocket shell against loopback servers, with a minimal venue protocol:
frames ``{"ch": key, "p": price}`` carry data for subscription ``key``; ``{"pong": true}``
answers the app ping ``{"ping": true}``."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import aiohttp
import pytest

from monitor.errors import ParseError, RetryableError
from monitor.model.events import Event, FeedState, FeedStatus, MarkPrice
from monitor.venues.feed import FeedSettings, PriceFeed, Subscription, WsFeed, fetch_text
from monitor.venues.parsing import CONTROL, PONG, Parsed
from tests.venues.servers import Conn, HttpServer, WsServer, run_feed, until


class TinyParser:
    """The test venue's parser (the FrameParser seam)."""

    venue = "tiny"

    def parse_frame(self, frame: str | bytes, ts_recv: float) -> Parsed:
        try:
            d = json.loads(frame)
        except ValueError:
            raise ParseError("tiny", "not JSON", frame) from None
        if d.get("pong"):
            return PONG
        if "ch" in d:
            return Parsed(d["ch"], [MarkPrice("tiny", d["ch"], float(d["p"]), ts_recv=ts_recv)])
        return CONTROL

    def parse(self, frame: str | bytes, ts_recv: float) -> list[Event]:
        return self.parse_frame(frame, ts_recv).events

    def parse_rest(self, name: str, body: str | bytes, ts_recv: float) -> list[Event]:
        return []


def settings(url: str, **kw: Any) -> FeedSettings:
    base = FeedSettings(
        url=url,
        protocol_ping_interval=None,
        protocol_ping_timeout=None,
        check_interval=0.02,
        backoff_initial=0.05,
        backoff_cap=0.2,
        open_timeout=1.0,
        close_timeout=0.2,
        gate_timeout=0.3,
    )
    return replace(base, **kw)


def subs(*keys: str, gate: str | None = None, silence: float | None = None) -> list[Subscription]:
    return [Subscription(k, json.dumps({"sub": k}), silence, gate=(k == gate)) for k in keys]


def sent_subs(conn: Conn) -> list[str]:
    return [m["sub"] for m in conn.received_json() if isinstance(m, dict) and "sub" in m]


async def echo_after(conn: Conn, delay: dict[str, float]) -> None:
    """Answer each subscription with one data frame, after ``delay[key]`` seconds (never if
    the key is missing)."""
    async for msg in conn.ws:
        conn.received.append(str(msg))
        d = json.loads(msg)
        if "sub" in d and d["sub"] in delay:
            await asyncio.sleep(delay[d["sub"]])
            await conn.send({"ch": d["sub"], "p": 1.0})
        if d.get("ping"):
            await conn.send({"pong": True})


async def test_gating_subscription_holds_the_rest_until_its_data_arrives() -> None:
    answered_at: dict[str, float] = {}
    sent_at: dict[str, float] = {}

    async def handler(conn: Conn) -> None:
        async for msg in conn.ws:
            d = json.loads(msg)
            sent_at[d["sub"]] = time.monotonic()
            if d["sub"] == "markets":
                await asyncio.sleep(0.1)
                answered_at["markets"] = time.monotonic()
                await conn.send({"ch": "markets", "p": 1.0})

    async with WsServer(handler) as ws:
        feed = WsFeed(
            "tiny", TinyParser(), settings(ws.url), lambda: subs("markets", "acct", gate="markets")
        )
        await run_feed(feed, lambda ev: until(lambda: "acct" in sent_at))
    assert sent_at["acct"] >= answered_at["markets"]


async def test_gate_that_never_opens_times_out_and_the_rest_is_sent() -> None:
    async with WsServer(lambda c: echo_after(c, {})) as ws:
        feed = WsFeed(
            "tiny", TinyParser(), settings(ws.url), lambda: subs("markets", "acct", gate="markets")
        )
        started = time.monotonic()

        async def scenario(events: list[Any]) -> None:
            await until(lambda: ws.conns and "acct" in sent_subs(ws.conns[0]))

        await run_feed(feed, scenario)
    assert time.monotonic() - started >= 0.3  # gate_timeout


async def test_failing_bootstrap_does_not_stop_the_stream() -> None:
    calls = 0

    async def bootstrap(emit: Any) -> None:
        nonlocal calls
        calls += 1
        raise RetryableError("REST down")

    async with WsServer(lambda c: echo_after(c, {"a": 0.0})) as ws:
        feed = WsFeed(
            "tiny", TinyParser(), settings(ws.url), lambda: subs("a"), on_connect=bootstrap
        )
        events = await run_feed(
            feed, lambda ev: until(lambda: any(isinstance(e, MarkPrice) for e in ev))
        )
    assert calls == 1
    assert [e.symbol for e in events if isinstance(e, MarkPrice)] == ["a"]


async def test_backoff_resets_only_after_a_stable_connection() -> None:
    async with WsServer(lambda c: echo_after(c, {"a": 0.0})) as ws:
        feed = WsFeed("tiny", TinyParser(), settings(ws.url, stable_after=0.15), lambda: subs("a"))

        async def scenario(events: list[Any]) -> None:
            # an unstable connection: dropped at once, attempts keep growing
            await until(lambda: len(ws.conns) >= 1)
            ws.conns[0].abort()
            await until(lambda: len(ws.conns) >= 2)
            ws.conns[1].abort()
            await until(lambda: len(ws.conns) >= 3)
            assert feed.backoff.attempts == 2
            await asyncio.sleep(0.25)  # longer than stable_after
            ws.conns[2].abort()
            await until(lambda: len(ws.conns) >= 4)

        await run_feed(feed, scenario)
    # reset by the stable connection, then counted once for the reconnect that followed
    assert feed.backoff.attempts == 1


async def test_subscribe_now_sends_on_the_live_connection_and_after_reconnects() -> None:
    wanted = ["a"]
    async with WsServer(lambda c: echo_after(c, {"a": 0.0, "b": 0.0})) as ws:
        feed = WsFeed("tiny", TinyParser(), settings(ws.url), lambda: subs(*wanted))
        feed.subscribe_now(subs("ignored")[0])  # not connected: nothing happens

        async def scenario(events: list[Any]) -> None:
            await until(lambda: any(isinstance(e, MarkPrice) for e in events))
            wanted.append("b")
            feed.subscribe_now(subs("b")[0])
            await until(lambda: any(isinstance(e, MarkPrice) and e.symbol == "b" for e in events))
            ws.conns[0].abort()
            await until(lambda: len(ws.conns) >= 2 and len(sent_subs(ws.conns[1])) >= 2)

        await run_feed(feed, scenario)
    assert sent_subs(ws.conns[0]) == ["a", "b"]
    assert sent_subs(ws.conns[1]) == ["a", "b"]


async def test_recorder_gets_every_frame_with_its_channel() -> None:
    recorded: list[tuple[str, str, str]] = []

    async def handler(conn: Conn) -> None:
        await conn.send("garbage")
        await conn.ws.send(json.dumps({"ch": "a", "p": 2}).encode())  # a binary frame
        await conn.send({"hello": 1})
        await conn.ws.wait_closed()

    async with WsServer(handler) as ws:
        feed = WsFeed(
            "tiny",
            TinyParser(),
            settings(ws.url),
            list,
            recorder=lambda ts, venue, ch, frame: recorded.append((venue, ch, frame)),
        )
        await run_feed(feed, lambda ev: until(lambda: len(recorded) >= 3))
    assert recorded == [
        ("tiny", "ws", "garbage"),
        ("tiny", "a", '{"ch": "a", "p": 2}'),
        ("tiny", "ws", '{"hello": 1}'),
    ]
    assert feed.stats.bad_frames == 1
    assert feed.stats.bad_by_problem == {"not JSON": 1}


async def test_a_silent_channel_is_stale_and_keeps_forcing_reconnects() -> None:
    async with WsServer(lambda c: echo_after(c, {})) as ws:
        feed = WsFeed("tiny", TinyParser(), settings(ws.url), lambda: subs("a", silence=0.1))
        events = await run_feed(feed, lambda ev: until(lambda: len(ws.conns) >= 3))
    stale = [e for e in events if isinstance(e, FeedStatus) and e.state is FeedState.STALE]
    assert len(stale) == 1  # reported once while it stays stale
    assert feed.stats.stale_reconnects >= 2


async def test_fetch_text_returns_bodies_and_classifies_failures() -> None:
    http = HttpServer()
    http.route("GET", "/ok", lambda _b: (200, '{"a":1}'))
    http.route("GET", "/busy", lambda _b: (503, "busy"))
    async with http, aiohttp.ClientSession() as session:
        assert await fetch_text(session, "GET", f"{http.url}/ok") == '{"a":1}'
        with pytest.raises(RetryableError, match="HTTP 503"):
            await fetch_text(session, "GET", f"{http.url}/busy")
        port = http.port
    async with aiohttp.ClientSession() as session:
        with pytest.raises(RetryableError, match="GET"):
            await fetch_text(session, "GET", f"http://127.0.0.1:{port}/ok", total_seconds=1.0)


class BrokenParser(TinyParser):
    """A parser with a bug: a KeyError on frames without "p"."""

    def parse_frame(self, frame: str | bytes, ts_recv: float) -> Parsed:
        d = json.loads(frame)
        if "ch" in d and "p" not in d:
            return Parsed(d["ch"], [MarkPrice("tiny", d["ch"], float(d["missing"]))])
        return super().parse_frame(frame, ts_recv)


async def test_a_parser_bug_is_counted_as_a_bad_frame_and_the_feed_goes_on() -> None:
    async def handler(conn: Conn) -> None:
        await conn.send({"ch": "a"})
        await conn.send({"ch": "a", "p": 3.0})
        await conn.ws.wait_closed()

    async with WsServer(handler) as ws:
        feed = WsFeed("tiny", BrokenParser(), settings(ws.url), list)
        events = await run_feed(
            feed, lambda ev: until(lambda: any(isinstance(e, MarkPrice) for e in ev))
        )
    assert [e.mark for e in events if isinstance(e, MarkPrice)] == [3.0]
    assert feed.stats.bad_frames == 1
    assert feed.stats.connects == 1
    (problem,) = feed.stats.bad_by_problem
    assert problem.startswith("parser failed: KeyError")


async def test_a_dropped_subscription_is_no_longer_watched_after_a_reconnect() -> None:
    wanted = ["a", "quiet"]
    async with WsServer(lambda c: echo_after(c, {"a": 0.0})) as ws:

        def current() -> list[Subscription]:
            # "a" has no silence limit, "quiet" one of 0.15 s (and never speaks)
            return [
                Subscription(k, json.dumps({"sub": k}), 0.15 if k == "quiet" else None)
                for k in wanted
            ]

        feed = WsFeed("tiny", TinyParser(), settings(ws.url), current)

        async def scenario(events: list[Any]) -> None:
            await until(lambda: "quiet" in feed.watchdogs)
            wanted.remove("quiet")
            ws.conns[0].abort()
            await until(lambda: len(ws.conns) >= 2)
            await asyncio.sleep(0.3)  # longer than the silence limit of "quiet"

        await run_feed(feed, scenario)
    assert set(feed.watchdogs) == set()
    assert len(ws.conns) == 2  # no stale-forced reconnect for the dropped channel


async def test_a_dropped_stale_subscription_is_reported_over() -> None:
    """A channel that went stale and is then no longer subscribed reports LIVE ("no longer
    subscribed"), or the engine would hold the venue's alerts for a channel that never
    recovers."""
    wanted = ["quiet"]
    async with WsServer(lambda c: echo_after(c, {})) as ws:

        def current() -> list[Subscription]:
            return [Subscription(k, json.dumps({"sub": k}), 0.1) for k in wanted]

        feed = WsFeed("tiny", TinyParser(), settings(ws.url), current)

        async def scenario(events: list[Any]) -> None:
            await until(
                lambda: any(
                    isinstance(e, FeedStatus) and e.state is FeedState.STALE for e in events
                )
            )
            wanted.clear()  # the next session no longer subscribes "quiet"
            await until(
                lambda: any(
                    isinstance(e, FeedStatus) and e.channel == "quiet" and e.state is FeedState.LIVE
                    for e in events
                )
            )

        events = await run_feed(feed, scenario)
    over = [
        e
        for e in events
        if isinstance(e, FeedStatus) and e.channel == "quiet" and e.state is FeedState.LIVE
    ]
    assert over[0].detail == "no longer subscribed"


async def test_fetch_text_survives_a_body_that_is_not_utf8() -> None:
    """A garbled body (a proxy's, a truncated one) comes back decoded with replacements, so
    the caller's parser rejects it as a bad document instead of the feed dying."""
    from aiohttp import web

    async def garbled(_: web.Request) -> web.Response:
        return web.Response(body=b'{"note":"caf\xe9"}', content_type="application/json")

    app = web.Application()
    app.router.add_post("/info", garbled)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with aiohttp.ClientSession() as http:
            text = await fetch_text(http, "POST", f"http://127.0.0.1:{port}/info", json_body={})
    finally:
        await runner.cleanup()
    assert text == '{"note":"caf\ufffd"}'


# -- refused entries and PriceFeed ---------------------------------------------------------
class EntryParser(TinyParser):
    """TinyParser whose frames ``{"ch": key, "ps": [..]}`` carry several prices: a
    non-positive one is refused on its own (the RefusesEntries seam)."""

    def __init__(self) -> None:
        self.refused: list[ParseError] = []

    def take_refused(self) -> list[ParseError]:
        out, self.refused = self.refused, []
        return out

    def parse_frame(self, frame: str | bytes, ts_recv: float) -> Parsed:
        d = json.loads(frame)
        if "ps" not in d:
            return super().parse_frame(frame, ts_recv)
        events: list[Event] = []
        for p in d["ps"]:
            if p > 0:
                events.append(MarkPrice("tiny", d["ch"], float(p), ts_recv=ts_recv))
            else:
                self.refused.append(ParseError("tiny", "price must be positive", str(p)))
        return Parsed(d["ch"], events)


async def test_refused_entries_are_counted_and_the_rest_of_the_frame_goes_on() -> None:
    async def handler(conn: Conn) -> None:
        await conn.ws.recv()
        await conn.send({"ch": "a", "ps": [1.0, -2.0, 3.0, 0.0]})
        await conn.ws.wait_closed()

    async with WsServer(handler) as ws:
        feed = WsFeed("tiny", EntryParser(), settings(ws.url), lambda: subs("a"))
        events = await run_feed(feed, lambda ev: until(lambda: feed.stats.bad_entries >= 2))
    assert [e.mark for e in events if isinstance(e, MarkPrice)] == [1.0, 3.0]
    assert (feed.stats.bad_entries, feed.stats.bad_frames) == (2, 0)  # -2.0 and 0.0
    assert feed.stats.bad_by_problem == {"price must be positive": 2}


async def test_price_feed_streams_while_metadata_fails_then_hands_over_intervals() -> None:
    calls: list[float] = []
    learnt: list[Mapping[str, float]] = []

    async def metadata(emit: Any) -> Mapping[str, float]:
        calls.append(time.monotonic())
        if len(calls) == 1:
            raise RetryableError("GET /exchangeInfo: HTTP 503")
        return {"a": 4.0}

    async with WsServer(lambda c: echo_after(c, {"a": 0.0})) as ws:
        ws_feed = WsFeed("tiny", TinyParser(), settings(ws.url), lambda: subs("a"))
        feed = PriceFeed(
            ws_feed,
            ["a"],
            metadata=metadata,
            on_intervals=learnt.append,
            metadata_interval=0.1,
            metadata_retry=0.05,
        )
        events = await run_feed(feed, lambda ev: until(lambda: feed.metadata_loads >= 2))
    assert any(isinstance(e, MarkPrice) for e in events)  # prices flowed regardless
    assert feed.metadata_failures == 1
    assert learnt[:2] == [{"a": 4.0}, {"a": 4.0}]  # the first success, then a refresh
    assert calls[1] - calls[0] >= 0.05  # retried after metadata_retry
    assert calls[2] - calls[1] >= 0.1  # refreshed after metadata_interval
