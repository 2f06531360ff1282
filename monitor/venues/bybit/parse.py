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
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import orjson

from monitor.errors import ParseError
from monitor.model.events import Event, FundingRate, MarkPrice

VENUE = "bybit"
DEFAULT_INTERVAL_HOURS = 8.0
_NO_INTERVALS: Mapping[str, float] = {}


def parse(
    frame: str | bytes,
    ts_recv: float,
    interval_hours: Mapping[str, float] = _NO_INTERVALS,
) -> list[Event]:
    """Events of one WS text frame received at ``ts_recv`` (epoch seconds)."""
    try:
        msg = orjson.loads(frame)
    except orjson.JSONDecodeError:
        raise ParseError(VENUE, "not JSON", frame) from None
    if not isinstance(msg, dict):
        raise ParseError(VENUE, "not a JSON object", frame)
    topic = msg.get("topic")
    if topic is None:
        if "op" in msg and msg.get("success") is True:
            return []
        if "pong" in msg:
            return []
        raise ParseError(VENUE, f"error or unknown reply: {msg.get('ret_msg')!r}", frame)
    if not isinstance(topic, str) or not topic.startswith("tickers."):
        raise ParseError(VENUE, f"unexpected topic {topic!r}", frame)
    try:
        return _ticker(msg["data"], msg["ts"] / 1000.0, ts_recv, interval_hours, frame)
    except (KeyError, TypeError, ValueError) as exc:
        raise ParseError(VENUE, f"bad ticker: {exc!r}", frame) from None


def _ticker(
    d: Any,
    ts_event: float,
    ts_recv: float,
    interval_hours: Mapping[str, float],
    frame: str | bytes,
) -> list[Event]:
    symbol = d["symbol"]
    if not isinstance(symbol, str) or not symbol:
        raise ParseError(VENUE, "missing symbol", frame)
    out: list[Event] = []
    mark_s = d.get("markPrice")
    if mark_s:
        mark = float(mark_s)
        if not (mark > 0.0 and mark != math.inf):
            raise ParseError(VENUE, f"bad mark price {mark_s!r}", frame)
        index_s = d.get("indexPrice")
        oracle = float(index_s) if index_s else None
        if oracle is not None and not (oracle > 0.0 and oracle != math.inf):
            raise ParseError(VENUE, f"bad index price {index_s!r}", frame)
        out.append(MarkPrice(VENUE, symbol, mark, oracle, ts_event, ts_recv))
    rate_s = d.get("fundingRate")
    if rate_s:
        rate = float(rate_s)
        if not math.isfinite(rate):
            raise ParseError(VENUE, f"bad funding rate {rate_s!r}", frame)
        nxt = d.get("nextFundingTime")
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
