"""Binance USDⓈ-M mark price stream frames → events (pure: no I/O, no clock).

Wire format (feeds.md §3, fixtures ``binance/``): a ``markPriceUpdate`` event
``{"e":"markPriceUpdate","E":ms,"s":"BTCUSDT","p":mark,"i":index,"P":settle,"r":rate,"T":ms}``,
either bare (raw ``/ws`` stream), as a JSON array (the all-market ``!markPrice@arr`` stream) or in
the combined-stream wrapper ``{"stream":..., "data": <event or array>}``. ``p``/``i``/``r`` are
decimal strings, ``E``/``T`` integer milliseconds.

Each update gives a :class:`MarkPrice` (``mark`` = ``p``, ``oracle`` = ``i``, the index price)
and, when ``r`` is not empty (delivery contracts send ``""``), a :class:`FundingRate` whose
``rate`` is the fraction paid per funding interval (positive: longs pay shorts) and
``next_funding_ts`` = ``T`` in seconds. Binance does not put the interval in the stream: it is
``interval_hours[symbol]`` when the caller knows it, else 8 h. Event times are seconds.

Subscription replies ``{"result":null,"id":n}`` give no events; error replies and anything of
the wrong shape raise :class:`ParseError`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import orjson

from monitor.errors import ParseError
from monitor.model.events import Event, FundingRate, MarkPrice

VENUE = "binance_usdm"
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
    out: list[Event] = []
    try:
        if isinstance(msg, dict):
            if "e" in msg:
                _update(msg, ts_recv, interval_hours, out, frame)
                return out
            data = msg.get("data")
            if data is not None and "stream" in msg:
                msg = data
            elif "result" in msg and "id" in msg:
                return out
            elif "error" in msg:
                raise ParseError(VENUE, f"error reply: {msg['error']!r}", frame)
            else:
                raise ParseError(VENUE, "unknown message", frame)
        if isinstance(msg, list):
            for item in msg:
                _update(item, ts_recv, interval_hours, out, frame)
        elif isinstance(msg, dict):
            _update(msg, ts_recv, interval_hours, out, frame)
        else:
            raise ParseError(VENUE, "unknown message", frame)
    except (KeyError, TypeError, ValueError) as exc:
        raise ParseError(VENUE, f"bad markPriceUpdate: {exc!r}", frame) from None
    return out


def _update(
    u: Any,
    ts_recv: float,
    interval_hours: Mapping[str, float],
    out: list[Event],
    frame: str | bytes,
) -> None:
    if u["e"] != "markPriceUpdate":
        raise ParseError(VENUE, f"unexpected event {u['e']!r}", frame)
    symbol = u["s"]
    if not isinstance(symbol, str) or not symbol:
        raise ParseError(VENUE, "missing symbol", frame)
    mark = float(u["p"])
    if not (mark > 0.0 and mark != math.inf):
        raise ParseError(VENUE, f"bad mark price {u['p']!r}", frame)
    index = u.get("i")
    oracle = float(index) if index else None
    if oracle is not None and not (oracle > 0.0 and oracle != math.inf):
        raise ParseError(VENUE, f"bad index price {index!r}", frame)
    ts_event = u["E"] / 1000.0
    out.append(MarkPrice(VENUE, symbol, mark, oracle, ts_event, ts_recv))
    r = u.get("r")
    if r:
        rate = float(r)
        if not math.isfinite(rate):
            raise ParseError(VENUE, f"bad funding rate {r!r}", frame)
        nxt = u.get("T")
        out.append(
            FundingRate(
                VENUE,
                symbol,
                rate,
                interval_hours.get(symbol, DEFAULT_INTERVAL_HOURS),
                nxt / 1000.0 if nxt else None,
                ts_event,
                ts_recv,
            )
        )
