"""Bybit v5 public linear ``tickers.{symbol}`` frames → events (pure: no I/O, no clock).

Wire format (feeds.md §4, fixtures ``bybit/``): ``{"topic":"tickers.BTCUSDT","type":"snapshot"
|"delta","data":{...},"cs":n,"ts":ms}``; every value in ``data`` is a decimal string. A snapshot
carries every field, a delta only the fields that changed, so a missing key means *unchanged*:
the parser emits only what the frame carries and never invents a value.

* ``markPrice`` (with ``indexPrice`` as ``oracle`` when present) → :class:`MarkPrice`;
* ``fundingRate`` → :class:`FundingRate`: ``rate`` is the fraction per funding interval
  (positive: longs pay shorts), ``next_funding_ts`` from ``nextFundingTime`` (ms → s) when
  present. The stream has no interval: ``interval_hours[symbol]`` (from the instruments'
  ``fundingInterval``) when the caller knows it, else 8 h.

``ts_event`` is the envelope ``ts`` in seconds. Acks and pongs (``op``/``success`` true) give
no events; a failed ack (``success: false``) and anything else raise :class:`ParseError`.

:class:`BybitParser` puts it behind the :class:`~monitor.venues.parsing.FrameParser` seam
(record/replay) and, like ccxt's merge, remembers each symbol's ``nextFundingTime`` so that a
delta's funding rate keeps the settlement time its snapshot gave.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import msgspec
import orjson

from monitor.errors import ParseError
from monitor.model.events import Event, FundingRate, MarkPrice
from monitor.venues.parsing import CONTROL, Parsed

VENUE = "bybit"
DEFAULT_INTERVAL_HOURS = 8.0
_NO_INTERVALS: Mapping[str, float] = {}
_INF = math.inf


class _Ticker(msgspec.Struct):
    """The ticker fields we use; a delta leaves the unchanged ones out (None here)."""

    symbol: str
    markPrice: str | None = None
    indexPrice: str | None = None
    fundingRate: str | None = None
    nextFundingTime: str | None = None


class _Push(msgspec.Struct):
    topic: str
    data: _Ticker
    ts: int


_PUSH = msgspec.json.Decoder(_Push)


def parse(
    frame: str | bytes,
    ts_recv: float,
    interval_hours: Mapping[str, float] = _NO_INTERVALS,
) -> list[Event]:
    """Events of one WS text frame received at ``ts_recv`` (epoch seconds)."""
    try:
        push = _PUSH.decode(frame)
    except msgspec.ValidationError as exc:
        return _control(frame, exc)
    except msgspec.DecodeError:
        raise ParseError(VENUE, "not JSON", frame) from None
    if not push.topic.startswith("tickers."):
        raise ParseError(VENUE, f"unexpected topic {push.topic!r}", frame)
    try:
        return _ticker(push.data, push.ts / 1000.0, ts_recv, interval_hours, frame)
    except ValueError as exc:  # float()/int() of a non-numeric string
        raise ParseError(VENUE, f"bad ticker: {exc}", frame) from None


def _control(frame: str | bytes, why: msgspec.ValidationError) -> list[Event]:
    """Acks and pongs (no events), failed acks and wrong shapes (ParseError)."""
    try:
        msg: Any = orjson.loads(frame)
    except orjson.JSONDecodeError:
        raise ParseError(VENUE, f"bad frame: {why}", frame) from None
    if not isinstance(msg, dict):
        raise ParseError(VENUE, "not a JSON object", frame)
    if "topic" in msg:
        raise ParseError(VENUE, f"bad ticker: {why}", frame)
    if ("op" in msg and msg.get("success") is True) or "pong" in msg:
        return []
    raise ParseError(VENUE, f"error or unknown reply: {msg.get('ret_msg')!r}", frame)


def _ticker(
    d: _Ticker,
    ts_event: float,
    ts_recv: float,
    interval_hours: Mapping[str, float],
    frame: str | bytes,
) -> list[Event]:
    symbol = d.symbol
    if not symbol:
        raise ParseError(VENUE, "missing symbol", frame)
    out: list[Event] = []
    if d.markPrice:
        mark = float(d.markPrice)
        if not (mark > 0.0 and mark != _INF):
            raise ParseError(VENUE, f"bad mark price {d.markPrice!r}", frame)
        oracle = float(d.indexPrice) if d.indexPrice else None
        if oracle is not None and not (oracle > 0.0 and oracle != _INF):
            raise ParseError(VENUE, f"bad index price {d.indexPrice!r}", frame)
        out.append(MarkPrice(VENUE, symbol, mark, oracle, ts_event, ts_recv))
    if d.fundingRate:
        rate = float(d.fundingRate)
        if not math.isfinite(rate):
            raise ParseError(VENUE, f"bad funding rate {d.fundingRate!r}", frame)
        nxt = d.nextFundingTime
        out.append(
            FundingRate(
                VENUE,
                symbol,
                rate,
                interval_hours.get(symbol, DEFAULT_INTERVAL_HOURS),
                int(nxt) / 1000.0 if nxt else None,
                ts_event,
                ts_recv,
            )
        )
    return out


class BybitParser:
    """:func:`parse` with the per-symbol next funding time carried across deltas."""

    venue = VENUE

    def __init__(self, interval_hours: Mapping[str, float] | None = None) -> None:
        self._intervals: Mapping[str, float] = dict(interval_hours or {})
        self._next_funding: dict[str, float] = {}

    def parse(self, frame: str | bytes, ts_recv: float) -> list[Event]:
        events = parse(frame, ts_recv, self._intervals)
        for i, e in enumerate(events):
            if isinstance(e, FundingRate):
                if e.next_funding_ts is not None:
                    self._next_funding[e.symbol] = e.next_funding_ts
                elif e.symbol in self._next_funding:
                    events[i] = FundingRate(
                        e.venue,
                        e.symbol,
                        e.rate,
                        e.interval_hours,
                        self._next_funding[e.symbol],
                        e.ts_event,
                        e.ts_recv,
                    )
        return events

    def parse_frame(self, frame: str | bytes, ts_recv: float) -> Parsed:
        events = self.parse(frame, ts_recv)
        return Parsed("tickers", events) if events else CONTROL

    def parse_rest(self, name: str, body: str | bytes, ts_recv: float) -> list[Event]:
        raise ParseError(VENUE, f"no REST bodies are parsed (got {name[:40]!r})", body)
