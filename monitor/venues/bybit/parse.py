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

Bounds (issue 10.1): prices in ``[MIN_PRICE, MAX_PRICE]`` USD, ``|rate| <= MAX_ABS_RATE`` per
interval, ``ts``/``nextFundingTime`` in ``[0, MAX_TS_MS]`` ms; a ticker outside them (or
non-finite) is refused as a whole, as is one of the wrong shape. A push carries one ticker, so
the frame is the entry: it raises :class:`ParseError`.

:class:`BybitParser` puts it behind the :class:`~monitor.venues.parsing.FrameParser` seam
(record/replay), reports the pong (``{"op":"ping","ret_msg":"pong"}``, ``{"op":"pong"}``
or ``{"pong":ts}``) to the feed's keepalive and, like ccxt's merge, remembers each symbol's
``nextFundingTime`` so that a delta's funding rate keeps the settlement time its snapshot gave.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec
import orjson

from monitor.errors import ParseError
from monitor.model.events import Event, FundingRate, MarkPrice
from monitor.venues.parsing import CONTROL, PONG, Parsed

VENUE = "bybit"
DEFAULT_INTERVAL_HOURS = 8.0
MIN_PRICE = 1e-12
"""Smallest price accepted (USD per unit of the contract)."""
MAX_PRICE = 1e9
"""Largest price accepted (USD): three orders of magnitude above any listed perpetual."""
MAX_ABS_RATE = 1.0
"""Largest |funding rate| accepted per interval (Bybit caps it at a few percent)."""
MAX_TS_MS = 10_000_000_000_000
"""Latest time accepted, ms since the epoch (year 2286)."""
_NO_INTERVALS: Mapping[str, float] = {}


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
    return _parse(frame, ts_recv, interval_hours)[0]


_DATA, _PONG, _CONTROL = 0, 1, 2


def _parse(
    frame: str | bytes, ts_recv: float, interval_hours: Mapping[str, float]
) -> tuple[list[Event], int]:
    """(events, kind): a ticker push (``_DATA``, perhaps a delta without mark or funding), a
    pong or another control frame."""
    try:
        push = _PUSH.decode(frame)
    except msgspec.ValidationError as exc:
        return [], _PONG if _control(frame, exc) else _CONTROL
    except msgspec.DecodeError:
        raise ParseError(VENUE, "not JSON", frame) from None
    if not push.topic.startswith("tickers."):
        raise ParseError(VENUE, f"unexpected topic {push.topic!r}", frame)
    if not 0 <= push.ts <= MAX_TS_MS:
        raise ParseError(VENUE, f"ts out of bounds: {push.ts}", frame)
    try:
        return _ticker(push.data, push.ts / 1000.0, ts_recv, interval_hours, frame), _DATA
    except ValueError as exc:  # float()/int() of a non-numeric string
        raise ParseError(VENUE, f"bad ticker: {exc}", frame) from None


def _control(frame: str | bytes, why: msgspec.ValidationError) -> bool:
    """Acks (False) and pongs (True) give no events; failed acks and wrong shapes raise
    ParseError."""
    try:
        msg: Any = orjson.loads(frame)
    except orjson.JSONDecodeError:
        raise ParseError(VENUE, f"bad frame: {why}", frame) from None
    if not isinstance(msg, dict):
        raise ParseError(VENUE, "not a JSON object", frame)
    if "topic" in msg:
        raise ParseError(VENUE, f"bad ticker: {why}", frame)
    if "pong" in msg or msg.get("op") == "pong":
        return True
    if "op" in msg and msg.get("success") is True:
        return msg.get("op") == "ping" or msg.get("ret_msg") == "pong"
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
    mark = _price(d.markPrice, "mark price", frame) if d.markPrice else None
    oracle = _price(d.indexPrice, "index price", frame) if d.indexPrice else None
    if mark is not None:
        out.append(MarkPrice(VENUE, symbol, mark, oracle, ts_event, ts_recv))
    if d.fundingRate:
        rate = float(d.fundingRate)
        if not abs(rate) <= MAX_ABS_RATE:  # NaN fails too
            raise ParseError(VENUE, f"funding rate out of bounds: {d.fundingRate[:40]!r}", frame)
        nxt = d.nextFundingTime
        if nxt and not 0 <= int(nxt) <= MAX_TS_MS:
            raise ParseError(VENUE, f"nextFundingTime out of bounds: {nxt[:40]!r}", frame)
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


def _price(text: str, what: str, frame: str | bytes) -> float:
    value = float(text)
    if not MIN_PRICE <= value <= MAX_PRICE:  # NaN fails both comparisons
        raise ParseError(VENUE, f"{what} out of bounds: {text[:40]!r}", frame)
    return value


INTERVALS_BODY = "fundingIntervals"
"""The REST record name under which the native feed records the funding intervals it learnt
(``{"SYMBOL": hours, ...}``), so that a replay prices funding as the live feed did."""
MAX_INTERVAL_HOURS = 24.0


def parse_intervals(body: str | bytes) -> dict[str, float]:
    """A ``fundingIntervals`` record: symbol → hours in ``(0, MAX_INTERVAL_HOURS]``."""
    try:
        doc: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ParseError(VENUE, "fundingIntervals: not JSON", body) from None
    if type(doc) is not dict:
        raise ParseError(VENUE, "fundingIntervals: expected an object", body)
    out: dict[str, float] = {}
    for symbol, hours in doc.items():
        if type(hours) not in (int, float) or not 0 < hours <= MAX_INTERVAL_HOURS:
            raise ParseError(VENUE, f"fundingIntervals: bad interval for {symbol[:40]!r}", body)
        out[symbol] = float(hours)
    return out


CHANNEL = "tickers"


class BybitParser:
    """:func:`parse` with the per-symbol next funding time carried across deltas."""

    venue = VENUE

    def __init__(self, interval_hours: Mapping[str, float] | None = None) -> None:
        self._intervals: Mapping[str, float] = dict(interval_hours or {})
        self._next_funding: dict[str, float] = {}

    def set_intervals(self, interval_hours: Mapping[str, float]) -> None:
        """Replace the known funding intervals (hours per symbol)."""
        self._intervals = dict(interval_hours)

    def parse(self, frame: str | bytes, ts_recv: float) -> list[Event]:
        return self._parse(frame, ts_recv)[0]

    def _parse(self, frame: str | bytes, ts_recv: float) -> tuple[list[Event], int]:
        events, kind = _parse(frame, ts_recv, self._intervals)
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
        return events, kind

    def parse_frame(self, frame: str | bytes, ts_recv: float) -> Parsed:
        """A ticker push is data for the ``tickers`` channel even when it changes neither the
        mark nor the funding (a delta of other fields still proves the stream alive)."""
        events, kind = self._parse(frame, ts_recv)
        if kind == _DATA:
            return Parsed(CHANNEL, events)
        return PONG if kind == _PONG else CONTROL

    def parse_rest(self, name: str, body: str | bytes, ts_recv: float) -> list[Event]:
        """``fundingIntervals`` (recorded by the native feed): replaces the known intervals;
        no other REST body is parsed."""
        if name == INTERVALS_BODY:
            self.set_intervals(parse_intervals(body))
            return []
        raise ParseError(VENUE, f"no REST bodies are parsed (got {name[:40]!r})", body)
