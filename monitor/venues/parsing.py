"""Shared pieces of the pure venue parsers: the parser seam and fast, strict field reading.

Every venue parser turns one raw frame (``str`` or ``bytes``) received at ``ts_recv``
(seconds since the Unix epoch) into normalized events, without I/O or clock reads. A frame it
cannot use raises :class:`monitor.errors.ParseError` carrying the venue and a truncated copy;
the I/O shell logs, counts and skips it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import orjson

from monitor.errors import InputError, ParseError
from monitor.model.events import Event, FundingRate, MarkPrice


class Parsed(NamedTuple):
    """What one frame meant.

    ``channel``: the subscription the frame's data belongs to (the key the feed's staleness
    watchdog uses), None for control frames (acks, pongs, greetings). ``pong``: the frame
    answers an app-level ping.
    """

    channel: str | None
    events: list[Event]
    pong: bool = False


CONTROL = Parsed(None, [])
PONG = Parsed(None, [], pong=True)


class FrameParser(Protocol):
    """A venue's pure parser. It may keep state between frames (merged market data, the last
    timestamps seen to refuse out-of-order data), never I/O."""

    venue: str

    def parse_frame(self, frame: str | bytes, ts_recv: float) -> Parsed: ...

    def parse(self, frame: str | bytes, ts_recv: float) -> list[Event]: ...

    def parse_rest(self, name: str, body: str | bytes, ts_recv: float) -> list[Event]:
        """A REST body; ``name`` is the channel it was recorded under without ``rest:``."""
        ...


class Bad(Exception):
    """Raised by the field readers below; the parser's entry point turns it into a
    ParseError carrying the frame."""


def loads(frame: str | bytes) -> Any:
    try:
        return orjson.loads(frame)
    except orjson.JSONDecodeError as exc:
        raise Bad(f"not JSON ({exc.msg})") from None


def num(value: Any, what: str) -> float:
    """A finite float from a JSON number or decimal string."""
    t = type(value)
    if t is str or t is float or t is int:
        try:
            out = float(value)
        except ValueError:
            raise Bad(f"{what}: not a number: {str(value)[:40]!r}") from None
        if math.isfinite(out):
            return out
        raise Bad(f"{what}: must be finite, got {value!r}")
    raise Bad(f"{what}: expected a number, got {type(value).__name__}")


def pos_num(value: Any, what: str) -> float:
    out = num(value, what)
    if out <= 0.0:
        raise Bad(f"{what}: must be positive, got {value!r}")
    return out


def opt_num(value: Any, what: str) -> float | None:
    return None if value is None else num(value, what)


def obj(value: Any, what: str) -> dict[str, Any]:
    if type(value) is not dict:
        raise Bad(f"{what}: expected an object, got {type(value).__name__}")
    return value


def lst(value: Any, what: str) -> list[Any]:
    if type(value) is not list:
        raise Bad(f"{what}: expected a list, got {type(value).__name__}")
    return value


def text(value: Any, what: str) -> str:
    if type(value) is not str or not value:
        raise Bad(f"{what}: expected a non-empty string, got {type(value).__name__}")
    return value


def parse_error(venue: str, exc: Bad | InputError, frame: str | bytes) -> ParseError:
    problem = exc.args[0] if isinstance(exc, Bad) else str(exc)
    return ParseError(venue, problem, frame)


MarkPriceFactory = Callable[[str, str, float, "float | None", "float | None", float], MarkPrice]


def _mark_price_factory() -> MarkPriceFactory:
    """``MarkPrice(venue, symbol, mark, oracle, ts_event, ts_recv)`` at about half the cost
    of the generated ``__init__`` of a frozen dataclass (which sets every field through
    ``object.__setattr__``): the slots are set through their descriptors. Used on the hot
    path (one event per tick). If ``MarkPrice`` ever gets other fields or a
    ``__post_init__``, the plain constructor is used instead."""
    names = tuple(f.name for f in dataclasses.fields(MarkPrice))
    if names != ("venue", "symbol", "mark", "oracle", "ts_event", "ts_recv") or hasattr(
        MarkPrice, "__post_init__"
    ):
        return MarkPrice
    new = object.__new__
    slots: dict[str, Any] = dict(vars(MarkPrice))
    set_venue = slots["venue"].__set__
    set_symbol = slots["symbol"].__set__
    set_mark = slots["mark"].__set__
    set_oracle = slots["oracle"].__set__
    set_ts_event = slots["ts_event"].__set__
    set_ts_recv = slots["ts_recv"].__set__

    def make(  # noqa: PLR0917  (the positional signature of MarkPrice itself)
        venue: str,
        symbol: str,
        mark: float,
        oracle: float | None,
        ts_event: float | None,
        ts_recv: float,
    ) -> MarkPrice:
        event: MarkPrice = new(MarkPrice)
        set_venue(event, venue)
        set_symbol(event, symbol)
        set_mark(event, mark)
        set_oracle(event, oracle)
        set_ts_event(event, ts_event)
        set_ts_recv(event, ts_recv)
        return event

    return make


new_mark_price: MarkPriceFactory = _mark_price_factory()


FundingRateFactory = Callable[
    [str, str, float, float, "float | None", "float | None", float], FundingRate
]


def _funding_rate_factory() -> FundingRateFactory:
    """``FundingRate(venue, symbol, rate, interval_hours, next_funding_ts, ts_event,
    ts_recv)``, built like :data:`new_mark_price` (same guard)."""
    names = tuple(f.name for f in dataclasses.fields(FundingRate))
    expected = (
        "venue",
        "symbol",
        "rate",
        "interval_hours",
        "next_funding_ts",
        "ts_event",
        "ts_recv",
    )
    if names != expected or hasattr(FundingRate, "__post_init__"):
        return FundingRate
    new = object.__new__
    slots: dict[str, Any] = dict(vars(FundingRate))
    set_venue = slots["venue"].__set__
    set_symbol = slots["symbol"].__set__
    set_rate = slots["rate"].__set__
    set_interval = slots["interval_hours"].__set__
    set_next = slots["next_funding_ts"].__set__
    set_ts_event = slots["ts_event"].__set__
    set_ts_recv = slots["ts_recv"].__set__

    def make(  # noqa: PLR0917  (the positional signature of FundingRate itself)
        venue: str,
        symbol: str,
        rate: float,
        interval_hours: float,
        next_funding_ts: float | None,
        ts_event: float | None,
        ts_recv: float,
    ) -> FundingRate:
        event: FundingRate = new(FundingRate)
        set_venue(event, venue)
        set_symbol(event, symbol)
        set_rate(event, rate)
        set_interval(event, interval_hours)
        set_next(event, next_funding_ts)
        set_ts_event(event, ts_event)
        set_ts_recv(event, ts_recv)
        return event

    return make


new_funding_rate: FundingRateFactory = _funding_rate_factory()
