"""The dYdX v4 feed: REST markets bootstrap and the indexer WebSocket.

* At every (re)connect: ``GET {rest_url}/perpetualMarkets`` → instruments (MMF, IMF), oracle
  prices, next funding rates.
* WebSocket: the ``connected`` greeting, then ``v4_markets`` (``batched`` configurable; a
  gating subscription: the account subscriptions are sent once it delivered its snapshot, since
  their snapshots are priced with it), ``v4_subaccounts`` for every ``<address>/<n>`` and
  ``v4_parent_subaccounts`` for every parent ``<address>/<n>``.
* Keepalive: the server pings every 30 s at protocol level (answered by ``websockets``); we
  also ping at protocol level every ``protocol_ping_interval`` so a dead server is noticed. The
  markets channel has a staleness limit (oracle prices move every block); account channels
  only speak on change, so they have none by default.
"""

from __future__ import annotations

import random
import re

import aiohttp
import orjson

from monitor.clock import Clock, SystemClock
from monitor.errors import ConfigError, ParseError
from monitor.venues.dydx.parse import VENUE, DydxParser
from monitor.venues.feed import Emit, FeedSettings, Recorder, Subscription, WsFeed, fetch_text

WS_URL = "wss://indexer.dydx.trade/v4/ws"
REST_URL = "https://indexer.dydx.trade/v4"
_ID = re.compile(r"^[^/\s]+/\d+$")


def default_ws_settings(url: str = WS_URL) -> FeedSettings:
    return FeedSettings(url=url, protocol_ping_interval=20.0, protocol_ping_timeout=20.0)


def check_ids(ids: tuple[str, ...], key: str) -> None:
    for ident in ids:
        if not _ID.match(ident):
            raise ConfigError("dydx", key, f"expected <address>/<number>, got {ident!r}")


class DydxFeed:
    """Feed protocol implementation for dYdX v4 (see the module docstring)."""

    venue = VENUE

    def __init__(
        self,
        subaccounts: tuple[str, ...] = (),
        parent_subaccounts: tuple[str, ...] = (),
        ws: FeedSettings | None = None,
        *,
        rest_url: str = REST_URL,
        batched: bool = False,
        markets_max_silence: float = 60.0,
        account_max_silence: float | None = None,
        rest_timeout: float = 10.0,
        clock: Clock | None = None,
        recorder: Recorder | None = None,
        rng: random.Random | None = None,
    ) -> None:
        check_ids(subaccounts, "subaccounts")
        check_ids(parent_subaccounts, "parent_subaccounts")
        self.subaccounts = subaccounts
        self.parent_subaccounts = parent_subaccounts
        self.rest_url = rest_url.rstrip("/")
        self.batched = batched
        self.markets_max_silence = markets_max_silence
        self.account_max_silence = account_max_silence
        self.rest_timeout = rest_timeout
        self.clock: Clock = clock or SystemClock()
        self.recorder = recorder
        self.parser = DydxParser()
        self.ws = WsFeed(
            VENUE,
            self.parser,
            ws or default_ws_settings(),
            self.subscriptions,
            clock=self.clock,
            recorder=recorder,
            on_connect=self._bootstrap,
            rng=rng,
        )
        self._http: aiohttp.ClientSession | None = None

    def subscriptions(self) -> list[Subscription]:
        subs = [
            Subscription(
                "v4_markets",
                orjson.dumps(
                    {"type": "subscribe", "channel": "v4_markets", "batched": self.batched}
                ).decode(),
                self.markets_max_silence,
                gate=True,
            )
        ]
        for channel, ids in (
            ("v4_subaccounts", self.subaccounts),
            ("v4_parent_subaccounts", self.parent_subaccounts),
        ):
            for ident in ids:
                msg = {"type": "subscribe", "channel": channel, "id": ident}
                subs.append(
                    Subscription(
                        f"{channel}:{ident}", orjson.dumps(msg).decode(), self.account_max_silence
                    )
                )
        return subs

    async def run(self, emit: Emit) -> None:
        async with aiohttp.ClientSession() as http:
            self._http = http
            try:
                await self.ws.run(emit)
            finally:
                self._http = None

    async def _bootstrap(self, emit: Emit) -> None:
        http = self._http
        if http is None:
            return
        text = await fetch_text(
            http, "GET", f"{self.rest_url}/perpetualMarkets", total_seconds=self.rest_timeout
        )
        now = self.clock.now()
        if self.recorder is not None:
            self.recorder(now, VENUE, "rest:perpetualMarkets", text)
        try:
            events = self.parser.parse_rest("perpetualMarkets", text, now)
        except ParseError as exc:
            self.ws.stats.bad_frames += 1
            raise exc
        for e in events:
            emit(e)
