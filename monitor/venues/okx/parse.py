"""OKX v5 public ``mark-price`` and ``funding-rate`` frames → events (pure: no I/O, no clock).

Wire format (feeds.md §4, fixtures ``okx/``): ``{"arg":{"channel":..,"instId":..},"data":[..]}``
with every value a string. Symbols are OKX instrument ids (``BTC-USDT-SWAP``).

* ``mark-price``: each ``data`` item ``{instType, instId, markPx, ts}`` → :class:`MarkPrice`
  (no index price on this channel, ``oracle`` is None).
* ``funding-rate``: each item → :class:`FundingRate`. ``rate`` = ``fundingRate``, the fraction
  for the current period (positive: longs pay shorts), settled at ``fundingTime`` (ms → s, our
  ``next_funding_ts``). The interval is ``nextFundingTime − fundingTime`` in hours when both are
  given and positive, else 8 h.

``ts_event`` is the item's ``ts`` in seconds. Subscribe acks and the text ``pong`` give no
events; ``{"event":"error"}`` and anything else raise :class:`ParseError`.
"""

from __future__ import annotations

import math
from typing import Any

import orjson

from monitor.errors import ParseError
from monitor.model.events import Event, FundingRate, MarkPrice

VENUE = "okx"
DEFAULT_INTERVAL_HOURS = 8.0


def parse(frame: str | bytes, ts_recv: float) -> list[Event]:
    """Events of one WS text frame received at ``ts_recv`` (epoch seconds)."""
    if frame in ("pong", b"pong"):
        return []
    try:
        msg = orjson.loads(frame)
    except orjson.JSONDecodeError:
        raise ParseError(VENUE, "not JSON", frame) from None
    if not isinstance(msg, dict):
        raise ParseError(VENUE, "not a JSON object", frame)
    event = msg.get("event")
    if event is not None:
        if event in ("subscribe", "unsubscribe"):
            return []
        raise ParseError(VENUE, f"{event}: {msg.get('code')} {msg.get('msg')}", frame)
    out: list[Event] = []
    try:
        channel = msg["arg"]["channel"]
        data = msg["data"]
        if not isinstance(data, list):
            raise ParseError(VENUE, "data is not a list", frame)
        if channel == "mark-price":
            for item in data:
                _mark(item, ts_recv, out, frame)
        elif channel == "funding-rate":
            for item in data:
                _funding(item, ts_recv, out, frame)
        else:
            raise ParseError(VENUE, f"unexpected channel {channel!r}", frame)
    except (KeyError, TypeError, ValueError) as exc:
        raise ParseError(VENUE, f"bad push: {exc!r}", frame) from None
    return out


def _inst(item: Any, frame: str | bytes) -> str:
    inst = item["instId"]
    if not isinstance(inst, str) or not inst:
        raise ParseError(VENUE, "missing instId", frame)
    return inst


def _mark(item: Any, ts_recv: float, out: list[Event], frame: str | bytes) -> None:
    inst = _inst(item, frame)
    mark = float(item["markPx"])
    if not (mark > 0.0 and mark != math.inf):
        raise ParseError(VENUE, f"bad mark price {item['markPx']!r}", frame)
    out.append(MarkPrice(VENUE, inst, mark, None, int(item["ts"]) / 1000.0, ts_recv))


def _funding(item: Any, ts_recv: float, out: list[Event], frame: str | bytes) -> None:
    inst = _inst(item, frame)
    rate = float(item["fundingRate"])
    if not math.isfinite(rate):
        raise ParseError(VENUE, f"bad funding rate {item['fundingRate']!r}", frame)
    this_s = item.get("fundingTime")
    next_s = item.get("nextFundingTime")
    this_ms = int(this_s) if this_s else None
    interval = DEFAULT_INTERVAL_HOURS
    if this_ms is not None and next_s:
        gap = (int(next_s) - this_ms) / 3_600_000.0
        if gap > 0:
            interval = gap
    ts_s = item.get("ts")
    out.append(
        FundingRate(
            VENUE,
            inst,
            rate,
            interval,
            this_ms / 1000.0 if this_ms is not None else None,
            int(ts_s) / 1000.0 if ts_s else None,
            ts_recv,
        )
    )
