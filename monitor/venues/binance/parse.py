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

Bounds (issue 10.1: magnitudes no venue can produce are refused, never passed on): prices in
``[MIN_PRICE, MAX_PRICE]`` USD, ``|rate| <= MAX_ABS_RATE`` per interval, ``E``/``T`` in
``[0, MAX_TS_MS]`` ms. An update outside them, non-finite or of the wrong shape is *refused*.

Per-entry isolation (issue 10.4): in an array (``!markPrice@arr``, bare or wrapped) a refused
update costs that update only: the others are returned and the refusal is appended to
``refused`` (a :class:`ParseError` carrying the entry's own text) when the caller passes a list,
else raised. A frame that is a single update, or not an update at all, raises
:class:`ParseError` for the whole frame. ``only`` (a set of symbols) drops updates of other
symbols before any event is built (the all-market stream carries every listed perpetual).

Subscription replies ``{"result":null,"id":n}`` give no events; error replies and anything of
the wrong shape raise :class:`ParseError`.

:class:`BinanceParser` is the same parser behind the :class:`~monitor.venues.parsing.
FrameParser` seam (record/replay); its data channel is ``markPrice``; refused entries are kept
for :meth:`BinanceParser.take_refused`.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from typing import Any

import msgspec
import orjson

from monitor.errors import ParseError
from monitor.model.events import Event, FundingRate, MarkPrice
from monitor.model.venues import BINANCE_USDM
from monitor.venues.parsing import CONTROL, Parsed

VENUE = BINANCE_USDM
DEFAULT_INTERVAL_HOURS = 8.0
MIN_PRICE = 1e-12
"""Smallest price accepted (USD per unit of the contract)."""
MAX_PRICE = 1e9
"""Largest price accepted (USD): three orders of magnitude above any listed perpetual."""
MAX_ABS_RATE = 1.0
"""Largest |funding rate| accepted per interval (venues cap it at a few percent)."""
MAX_TS_MS = 10_000_000_000_000
"""Latest event time accepted, ms since the epoch (year 2286)."""
_NO_INTERVALS: Mapping[str, float] = {}


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
    refused: list[ParseError] | None = None,
    only: Set[str] | None = None,
) -> list[Event]:
    """Events of one WS text frame received at ``ts_recv`` (epoch seconds); see the module
    docstring for ``refused`` and ``only``."""
    out: list[Event] = []
    try:
        if frame[:1] in ("[", b"["):
            try:
                updates: list[Any] = _MANY.decode(frame)
            except msgspec.ValidationError:
                updates = _loose_list(orjson.loads(frame), frame)
            _entries(updates, ts_recv, interval_hours, out, refused=refused, only=only)
            return out
        if frame[:9] not in ('{"stream"', b'{"stream"'):  # minified wrappers take the next path
            try:
                _update(_ONE.decode(frame), ts_recv, interval_hours, out, frame, only=only)
                return out
            except msgspec.ValidationError as exc:
                first = exc
        else:
            first = None
        try:
            data = _COMBINED.decode(frame).data  # the combined-stream wrapper
        except msgspec.ValidationError as exc:
            loose = _loose_combined(frame)
            if loose is None:
                return _reply(frame, first or exc)
            data = loose
        if isinstance(data, list):
            _entries(data, ts_recv, interval_hours, out, refused=refused, only=only)
        else:
            _update(data, ts_recv, interval_hours, out, frame, only=only)
        return out
    except msgspec.ValidationError as exc:
        raise ParseError(VENUE, f"bad markPriceUpdate: {exc}", frame) from None
    except (msgspec.DecodeError, orjson.JSONDecodeError):
        raise ParseError(VENUE, "not JSON", frame) from None
    except ValueError as exc:  # float() of a non-numeric string
        raise ParseError(VENUE, f"bad markPriceUpdate: {exc}", frame) from None


def _loose_list(doc: Any, frame: str | bytes) -> list[Any]:
    if type(doc) is not list:
        raise ParseError(VENUE, "bad markPriceUpdate array", frame)
    return doc


def _loose_combined(frame: str | bytes) -> list[Any] | None:
    """The ``data`` array of a wrapper whose array has a bad entry, else None."""
    try:
        doc: Any = orjson.loads(frame)
    except orjson.JSONDecodeError:
        return None
    if type(doc) is dict and type(doc.get("stream")) is str and type(doc.get("data")) is list:
        data: list[Any] = doc["data"]
        return data
    return None


def _entries(
    updates: list[Any],
    ts_recv: float,
    interval_hours: Mapping[str, float],
    out: list[Event],
    *,
    refused: list[ParseError] | None,
    only: Set[str] | None,
) -> None:
    """Each update of an array on its own: a bad one is refused, the others go on."""
    for entry in updates:
        u = entry
        try:
            if type(u) is not _Update:
                u = msgspec.convert(entry, _Update)
            _update(u, ts_recv, interval_hours, out, "", only=only)
        except (ParseError, msgspec.ValidationError, ValueError) as exc:
            problem = exc.problem if isinstance(exc, ParseError) else f"bad markPriceUpdate: {exc}"
            err = ParseError(VENUE, f"array entry: {problem}", _entry_text(u))
            if refused is None:
                raise err from None
            refused.append(err)


def _entry_text(u: Any) -> str:
    try:
        return orjson.dumps(msgspec.to_builtins(u) if type(u) is _Update else u).decode()
    except (TypeError, orjson.JSONEncodeError):
        return repr(u)[:200]


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


def _price(text: str, what: str, frame: str | bytes) -> float:
    value = float(text)
    if not MIN_PRICE <= value <= MAX_PRICE:  # NaN fails both comparisons
        raise ParseError(VENUE, f"{what} out of bounds: {text[:40]!r}", frame)
    return value


def _update(
    u: _Update,
    ts_recv: float,
    interval_hours: Mapping[str, float],
    out: list[Event],
    frame: str | bytes,
    *,
    only: Set[str] | None = None,
) -> None:
    if u.e != "markPriceUpdate":
        raise ParseError(VENUE, f"unexpected event {u.e!r}", frame)
    symbol = u.s
    if not symbol:
        raise ParseError(VENUE, "missing symbol", frame)
    if only is not None and symbol not in only:
        return
    mark = _price(u.p, "mark price", frame)
    oracle = _price(u.i, "index price", frame) if u.i else None
    if not (0 <= u.E <= MAX_TS_MS and 0 <= u.T <= MAX_TS_MS):
        raise ParseError(VENUE, f"event time out of bounds: E={u.E} T={u.T}", frame)
    ts_event = u.E / 1000.0
    if u.r:
        rate = float(u.r)
        if not abs(rate) <= MAX_ABS_RATE:  # NaN fails too
            raise ParseError(VENUE, f"funding rate out of bounds: {u.r[:40]!r}", frame)
        out.append(MarkPrice(VENUE, symbol, mark, oracle, ts_event, ts_recv))
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
    else:
        out.append(MarkPrice(VENUE, symbol, mark, oracle, ts_event, ts_recv))


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


CHANNEL = "markPrice"


KEEP_REFUSED = 1_000
"""Refusals kept for ``take_refused`` at most (the oldest go first when nobody takes them)."""


def _trim(refused: list[ParseError]) -> int:
    """Drop the oldest refusals beyond :data:`KEEP_REFUSED`; how many were dropped."""
    extra = len(refused) - KEEP_REFUSED
    if extra > 0:
        del refused[:extra]
        return extra
    return 0


class BinanceParser:
    """:func:`parse` as a :class:`~monitor.venues.parsing.FrameParser`. Keeps the refused
    entries of arrays until :meth:`take_refused`; ``symbols`` (optional) keeps only those
    symbols' updates; :meth:`set_intervals` replaces the known funding intervals (hours)."""

    venue = VENUE

    def __init__(
        self,
        interval_hours: Mapping[str, float] | None = None,
        symbols: Set[str] | None = None,
    ) -> None:
        self._intervals: Mapping[str, float] = dict(interval_hours or {})
        self._only: Set[str] | None = frozenset(symbols) if symbols is not None else None
        self._refused: list[ParseError] = []

    def set_intervals(self, interval_hours: Mapping[str, float]) -> None:
        self._intervals = dict(interval_hours)

    def take_refused(self) -> list[ParseError]:
        """The entries refused since the last call (each a ParseError with the entry's text)."""
        out, self._refused = self._refused, []
        return out

    def parse(self, frame: str | bytes, ts_recv: float) -> list[Event]:
        events = parse(frame, ts_recv, self._intervals, self._refused, self._only)
        _trim(self._refused)
        return events

    def parse_frame(self, frame: str | bytes, ts_recv: float) -> Parsed:
        before = len(self._refused)
        events = parse(frame, ts_recv, self._intervals, self._refused, self._only)
        if len(self._refused) > KEEP_REFUSED:
            before -= _trim(self._refused)
        if events:
            return Parsed(CHANNEL, events)
        if len(self._refused) == before and (
            frame[:1] in ("[", b"[") or frame[:9] in ('{"stream"', b'{"stream"')
        ):
            return Parsed(CHANNEL, events)  # data, none of it for the symbols we watch
        return CONTROL  # a reply, or an array whose every entry was refused: not data

    def parse_rest(self, name: str, body: str | bytes, ts_recv: float) -> list[Event]:
        """``premiumIndex``: the REST mark price body (one object or a list of them);
        ``fundingIntervals`` (recorded by the native feed): replaces the known intervals."""
        if name == INTERVALS_BODY:
            self.set_intervals(parse_intervals(body))
            return []
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
