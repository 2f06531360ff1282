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

Bounds (issue 10.1): prices in ``[MIN_PRICE, MAX_PRICE]`` USD, ``|rate| <= MAX_ABS_RATE`` per
interval, times in ``[0, MAX_TS_MS]`` ms. Per-item isolation (issue 10.4): an item outside them,
non-finite or of the wrong shape is refused and costs that item only; the refusal (a
:class:`ParseError` with the item's text) goes to ``refused`` when the caller passes a list,
else it is raised.

:class:`OkxParser` puts it behind the :class:`~monitor.venues.parsing.FrameParser` seam
(record/replay): the data channel is the push's ``arg.channel``, the text ``pong`` answers the
keepalive ``ping``, and refused items wait for :meth:`OkxParser.take_refused`.
"""

from __future__ import annotations

from typing import Any

import msgspec
import orjson

from monitor.errors import ParseError
from monitor.model.events import Event, FundingRate, MarkPrice
from monitor.venues.parsing import CONTROL, PONG, Parsed

VENUE = "okx"
DEFAULT_INTERVAL_HOURS = 8.0
MIN_PRICE = 1e-12
"""Smallest price accepted (USD per unit of the contract)."""
MAX_PRICE = 1e9
"""Largest price accepted (USD): three orders of magnitude above any listed perpetual."""
MAX_ABS_RATE = 1.0
"""Largest |funding rate| accepted per interval (OKX caps it at a few percent)."""
MAX_TS_MS = 10_000_000_000_000
"""Latest time accepted, ms since the epoch (year 2286)."""


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


class _LoosePush(msgspec.Struct):
    """A push whose items are checked one by one (after the typed decode failed)."""

    arg: _Arg
    data: list[Any]


_PUSH = msgspec.json.Decoder(_Push)
_LOOSE = msgspec.json.Decoder(_LoosePush)


def parse(
    frame: str | bytes, ts_recv: float, refused: list[ParseError] | None = None
) -> list[Event]:
    """Events of one WS text frame received at ``ts_recv`` (epoch seconds); a bad item goes
    to ``refused`` when given, else raises."""
    return _parse(frame, ts_recv, refused)[1]


def _parse(
    frame: str | bytes, ts_recv: float, refused: list[ParseError] | None
) -> tuple[str | None, list[Event]]:
    """(the push's channel, or None for control frames; events)."""
    if frame in ("pong", b"pong"):
        return None, []
    items: list[Any]
    try:
        push = _PUSH.decode(frame)
        channel, items = push.arg.channel, push.data
    except msgspec.ValidationError as exc:
        try:
            loose = _LOOSE.decode(frame)
        except msgspec.ValidationError:
            return None, _control(frame, exc)
        channel, items = loose.arg.channel, loose.data
    except msgspec.DecodeError:
        raise ParseError(VENUE, "not JSON", frame) from None
    if channel == "mark-price":
        one = _mark
    elif channel == "funding-rate":
        one = _funding
    else:
        raise ParseError(VENUE, f"unexpected channel {channel!r}", frame)
    out: list[Event] = []
    for raw in items:
        item = raw
        try:
            if type(item) is not _Item:
                item = msgspec.convert(raw, _Item)
            one(item, ts_recv, out, "")
        except (ParseError, msgspec.ValidationError, ValueError) as exc:
            problem = exc.problem if isinstance(exc, ParseError) else f"bad item: {exc}"
            err = ParseError(VENUE, f"{channel} item: {problem}", _item_text(item))
            if refused is None:
                raise err from None
            refused.append(err)
    return channel, out


def _item_text(item: Any) -> str:
    try:
        return orjson.dumps(msgspec.to_builtins(item) if type(item) is _Item else item).decode()
    except (TypeError, orjson.JSONEncodeError):
        return repr(item)[:200]


def _ms(text: str, what: str, frame: str | bytes) -> int:
    value = int(text)
    if not 0 <= value <= MAX_TS_MS:
        raise ParseError(VENUE, f"{what} out of bounds: {text[:40]!r}", frame)
    return value


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
    if not MIN_PRICE <= mark <= MAX_PRICE:  # NaN fails both comparisons
        raise ParseError(VENUE, f"mark price out of bounds: {item.markPx[:40]!r}", frame)
    out.append(MarkPrice(VENUE, inst, mark, None, _ms(item.ts, "ts", frame) / 1000.0, ts_recv))


def _funding(item: _Item, ts_recv: float, out: list[Event], frame: str | bytes) -> None:
    inst = _inst(item, frame)
    if item.fundingRate is None:
        raise ParseError(VENUE, "funding-rate item without fundingRate", frame)
    rate = float(item.fundingRate)
    if not abs(rate) <= MAX_ABS_RATE:  # NaN fails too
        raise ParseError(VENUE, f"funding rate out of bounds: {item.fundingRate[:40]!r}", frame)
    this_ms = _ms(item.fundingTime, "fundingTime", frame) if item.fundingTime else None
    ts_ms = _ms(item.ts, "ts", frame) if item.ts else None
    interval = DEFAULT_INTERVAL_HOURS
    if this_ms is not None and item.nextFundingTime:
        gap = (_ms(item.nextFundingTime, "nextFundingTime", frame) - this_ms) / 3_600_000.0
        if gap > 0:
            interval = gap
    out.append(
        FundingRate(
            VENUE,
            inst,
            rate,
            interval,
            this_ms / 1000.0 if this_ms is not None else None,
            ts_ms / 1000.0 if ts_ms is not None else None,
            ts_recv,
        )
    )


KEEP_REFUSED = 1_000
"""Refusals kept for ``take_refused`` at most (the oldest go first when nobody takes them)."""


def _trim(refused: list[ParseError]) -> int:
    """Drop the oldest refusals beyond :data:`KEEP_REFUSED`; how many were dropped."""
    extra = len(refused) - KEEP_REFUSED
    if extra > 0:
        del refused[:extra]
        return extra
    return 0


class OkxParser:
    """:func:`parse` as a :class:`~monitor.venues.parsing.FrameParser`; keeps the refused
    items until :meth:`take_refused`."""

    venue = VENUE

    def __init__(self) -> None:
        self._refused: list[ParseError] = []

    def take_refused(self) -> list[ParseError]:
        """The items refused since the last call (each a ParseError with the item's text)."""
        out, self._refused = self._refused, []
        return out

    def parse(self, frame: str | bytes, ts_recv: float) -> list[Event]:
        events = _parse(frame, ts_recv, self._refused)[1]
        _trim(self._refused)
        return events

    def parse_frame(self, frame: str | bytes, ts_recv: float) -> Parsed:
        """A push whose every item was refused is not data (its channel's silence goes on)."""
        if frame in ("pong", b"pong"):
            return PONG
        before = len(self._refused)
        channel, events = _parse(frame, ts_recv, self._refused)
        if len(self._refused) > KEEP_REFUSED:
            before -= _trim(self._refused)
        if channel is None or (not events and len(self._refused) > before):
            return CONTROL
        return Parsed(channel, events)

    def parse_rest(self, name: str, body: str | bytes, ts_recv: float) -> list[Event]:
        raise ParseError(VENUE, f"no REST bodies are parsed (got {name[:40]!r})", body)
