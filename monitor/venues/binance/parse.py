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

:class:`BinanceParser` is the same parser behind the :class:`~monitor.venues.parsing.
FrameParser` seam (record/replay); its data channel is ``markPrice``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import msgspec
import orjson

from monitor.errors import ParseError
from monitor.model.events import Event, FundingRate, MarkPrice
from monitor.model.venues import BINANCE_USDM
from monitor.venues.parsing import CONTROL, Parsed

VENUE = BINANCE_USDM
DEFAULT_INTERVAL_HOURS = 8.0
_NO_INTERVALS: Mapping[str, float] = {}
_INF = math.inf


class _Update(msgspec.Struct):
    """One ``markPriceUpdate`` (fields we do not use, such as ``P``, are skipped)."""

    e: str
    E: int
    s: str
    p: str
    i: str = ""
    r: str = ""
    T: int = 0


class _Combined(msgspec.Struct):
    stream: str
    data: _Update | list[_Update]


_ONE = msgspec.json.Decoder(_Update)
_MANY = msgspec.json.Decoder(list[_Update])
_COMBINED = msgspec.json.Decoder(_Combined)


def parse(
    frame: str | bytes,
    ts_recv: float,
    interval_hours: Mapping[str, float] = _NO_INTERVALS,
) -> list[Event]:
    """Events of one WS text frame received at ``ts_recv`` (epoch seconds)."""
    out: list[Event] = []
    try:
        if frame[:1] in ("[", b"["):
            for u in _MANY.decode(frame):
                _update(u, ts_recv, interval_hours, out, frame)
            return out
        if frame[:9] not in ('{"stream"', b'{"stream"'):  # minified wrappers take the next path
            try:
                _update(_ONE.decode(frame), ts_recv, interval_hours, out, frame)
                return out
            except msgspec.ValidationError as exc:
                first = exc
        else:
            first = None
        try:
            data = _COMBINED.decode(frame).data  # the combined-stream wrapper
        except msgspec.ValidationError as exc:
            return _reply(frame, first or exc)
        for u in data if isinstance(data, list) else (data,):
            _update(u, ts_recv, interval_hours, out, frame)
        return out
    except msgspec.ValidationError as exc:
        raise ParseError(VENUE, f"bad markPriceUpdate: {exc}", frame) from None
    except msgspec.DecodeError:
        raise ParseError(VENUE, "not JSON", frame) from None
    except ValueError as exc:  # float() of a non-numeric string
        raise ParseError(VENUE, f"bad markPriceUpdate: {exc}", frame) from None


def _reply(frame: str | bytes, why: msgspec.ValidationError) -> list[Event]:
    """A frame that is not an update: a subscription reply, an error, or a bad update."""
    msg: Any = orjson.loads(frame)
    if isinstance(msg, dict):
        if "e" in msg or "stream" in msg:  # an update or a wrapper of the wrong shape
            raise ParseError(VENUE, f"bad markPriceUpdate: {why}", frame)
        if "result" in msg and "id" in msg:
            return []
        if "error" in msg:
            raise ParseError(VENUE, f"error reply: {msg['error']!r}", frame)
    raise ParseError(VENUE, "unknown message", frame)


def _update(
    u: _Update,
    ts_recv: float,
    interval_hours: Mapping[str, float],
    out: list[Event],
    frame: str | bytes,
) -> None:
    if u.e != "markPriceUpdate":
        raise ParseError(VENUE, f"unexpected event {u.e!r}", frame)
    symbol = u.s
    if not symbol:
        raise ParseError(VENUE, "missing symbol", frame)
    mark = float(u.p)
    if not (mark > 0.0 and mark != _INF):
        raise ParseError(VENUE, f"bad mark price {u.p!r}", frame)
    oracle = float(u.i) if u.i else None
    if oracle is not None and not (oracle > 0.0 and oracle != _INF):
        raise ParseError(VENUE, f"bad index price {u.i!r}", frame)
    ts_event = u.E / 1000.0
    out.append(MarkPrice(VENUE, symbol, mark, oracle, ts_event, ts_recv))
    if u.r:
        rate = float(u.r)
        if not math.isfinite(rate):
            raise ParseError(VENUE, f"bad funding rate {u.r!r}", frame)
        out.append(
            FundingRate(
                VENUE,
                symbol,
                rate,
                interval_hours.get(symbol, DEFAULT_INTERVAL_HOURS),
                u.T / 1000.0 if u.T else None,
                ts_event,
                ts_recv,
            )
        )


CHANNEL = "markPrice"


class BinanceParser:
    """:func:`parse` as a :class:`~monitor.venues.parsing.FrameParser` (stateless)."""

    venue = VENUE

    def __init__(self, interval_hours: Mapping[str, float] | None = None) -> None:
        self._intervals: Mapping[str, float] = dict(interval_hours or {})

    def parse(self, frame: str | bytes, ts_recv: float) -> list[Event]:
        return parse(frame, ts_recv, self._intervals)

    def parse_frame(self, frame: str | bytes, ts_recv: float) -> Parsed:
        events = parse(frame, ts_recv, self._intervals)
        return Parsed(CHANNEL, events) if events else CONTROL

    def parse_rest(self, name: str, body: str | bytes, ts_recv: float) -> list[Event]:
        """``premiumIndex``: the REST mark price body (one object or a list of them)."""
        if name != "premiumIndex":
            raise ParseError(VENUE, f"unknown REST body {name[:40]!r}", body)
        try:
            doc: Any = orjson.loads(body)
            items = doc if isinstance(doc, list) else [doc]
            out: list[Event] = []
            for d in items:
                update = _Update(
                    "markPriceUpdate",
                    int(d["time"]),
                    d["symbol"],
                    d["markPrice"],
                    d.get("indexPrice") or "",
                    d.get("lastFundingRate") or "",
                    int(d.get("nextFundingTime") or 0),
                )
                _update(update, ts_recv, self._intervals, out, body)
        except (orjson.JSONDecodeError, LookupError, TypeError, ValueError) as exc:
            raise ParseError(VENUE, f"bad premiumIndex: {exc!r}", body) from None
        return out
