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

:class:`OkxParser` puts it behind the :class:`~monitor.venues.parsing.FrameParser` seam
(record/replay); the data channel is the push's ``arg.channel``.
"""

from __future__ import annotations

import math
from typing import Any

import msgspec
import orjson

from monitor.errors import ParseError
from monitor.model.events import Event, FundingRate, MarkPrice
from monitor.venues.parsing import CONTROL, Parsed

VENUE = "okx"
DEFAULT_INTERVAL_HOURS = 8.0
_INF = math.inf


class _Arg(msgspec.Struct):
    channel: str


class _Item(msgspec.Struct):
    """A ``data`` item of either channel (the fields of the other channel stay None)."""

    instId: str
    ts: str | None = None
    markPx: str | None = None
    fundingRate: str | None = None
    fundingTime: str | None = None
    nextFundingTime: str | None = None


class _Push(msgspec.Struct):
    arg: _Arg
    data: list[_Item]


_PUSH = msgspec.json.Decoder(_Push)


def parse(frame: str | bytes, ts_recv: float) -> list[Event]:
    """Events of one WS text frame received at ``ts_recv`` (epoch seconds)."""
    if frame in ("pong", b"pong"):
        return []
    try:
        push = _PUSH.decode(frame)
    except msgspec.ValidationError as exc:
        return _control(frame, exc)
    except msgspec.DecodeError:
        raise ParseError(VENUE, "not JSON", frame) from None
    out: list[Event] = []
    try:
        channel = push.arg.channel
        if channel == "mark-price":
            for item in push.data:
                _mark(item, ts_recv, out, frame)
        elif channel == "funding-rate":
            for item in push.data:
                _funding(item, ts_recv, out, frame)
        else:
            raise ParseError(VENUE, f"unexpected channel {channel!r}", frame)
    except ValueError as exc:  # float()/int() of a non-numeric string
        raise ParseError(VENUE, f"bad push: {exc}", frame) from None
    return out


def _control(frame: str | bytes, why: msgspec.ValidationError) -> list[Event]:
    """Subscribe/unsubscribe acks (no events); error events and wrong shapes (ParseError)."""
    try:
        msg: Any = orjson.loads(frame)
    except orjson.JSONDecodeError:
        raise ParseError(VENUE, f"bad frame: {why}", frame) from None
    if not isinstance(msg, dict):
        raise ParseError(VENUE, "not a JSON object", frame)
    event = msg.get("event")
    if event in ("subscribe", "unsubscribe"):
        return []
    if event is not None:
        raise ParseError(VENUE, f"{event}: {msg.get('code')} {msg.get('msg')}", frame)
    raise ParseError(VENUE, f"bad push: {why}", frame)


def _inst(item: _Item, frame: str | bytes) -> str:
    if not item.instId:
        raise ParseError(VENUE, "missing instId", frame)
    return item.instId


def _mark(item: _Item, ts_recv: float, out: list[Event], frame: str | bytes) -> None:
    inst = _inst(item, frame)
    if item.markPx is None or item.ts is None:
        raise ParseError(VENUE, "mark-price item without markPx or ts", frame)
    mark = float(item.markPx)
    if not (mark > 0.0 and mark != _INF):
        raise ParseError(VENUE, f"bad mark price {item.markPx!r}", frame)
    out.append(MarkPrice(VENUE, inst, mark, None, int(item.ts) / 1000.0, ts_recv))


def _funding(item: _Item, ts_recv: float, out: list[Event], frame: str | bytes) -> None:
    inst = _inst(item, frame)
    if item.fundingRate is None:
        raise ParseError(VENUE, "funding-rate item without fundingRate", frame)
    rate = float(item.fundingRate)
    if not math.isfinite(rate):
        raise ParseError(VENUE, f"bad funding rate {item.fundingRate!r}", frame)
    this_ms = int(item.fundingTime) if item.fundingTime else None
    interval = DEFAULT_INTERVAL_HOURS
    if this_ms is not None and item.nextFundingTime:
        gap = (int(item.nextFundingTime) - this_ms) / 3_600_000.0
        if gap > 0:
            interval = gap
    out.append(
        FundingRate(
            VENUE,
            inst,
            rate,
            interval,
            this_ms / 1000.0 if this_ms is not None else None,
            int(item.ts) / 1000.0 if item.ts else None,
            ts_recv,
        )
    )


class OkxParser:
    """:func:`parse` as a :class:`~monitor.venues.parsing.FrameParser` (stateless)."""

    venue = VENUE

    def parse(self, frame: str | bytes, ts_recv: float) -> list[Event]:
        return parse(frame, ts_recv)

    def parse_frame(self, frame: str | bytes, ts_recv: float) -> Parsed:
        events = parse(frame, ts_recv)
        if not events:
            return CONTROL
        return Parsed("mark-price" if isinstance(events[0], MarkPrice) else "funding-rate", events)

    def parse_rest(self, name: str, body: str | bytes, ts_recv: float) -> list[Event]:
        raise ParseError(VENUE, f"no REST bodies are parsed (got {name[:40]!r})", body)
