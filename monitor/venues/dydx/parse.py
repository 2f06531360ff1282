"""dYdX v4 indexer frames → normalized events (pure; feeds.md §2, margin-math.md §2).

The venue name in events is ``dydx_v4``. dYdX has no mark price: every price is the oracle
price, emitted as ``MarkPrice(mark=oracle, oracle=oracle)``. Funding is hourly:
``nextFundingRate`` becomes ``FundingRate(rate, interval_hours=1)`` (positive = longs pay).

WebSocket ``v4_markets``:

* ``subscribed`` (= the REST ``/v4/perpetualMarkets`` body): per market an ``InstrumentSpec``
  (MMF as a flat maintenance rate, IMF (open-interest scaled) as ``initial_margin_rate``,
  funding interval 1 h), a ``MarkPrice`` and a ``FundingRate``;
* ``channel_data`` / ``channel_batch_data`` (``contents`` an object or a list of them):
  ``oraclePrices`` → ``MarkPrice`` (an update older, by ``effectiveAtHeight``, than the last one
  of that ticker is dropped); ``trading`` → merged into the market; a new ``nextFundingRate``
  → ``FundingRate``; changed margin fractions or open-interest caps → a new ``InstrumentSpec``.

WebSocket ``v4_subaccounts`` / ``v4_parent_subaccounts`` (account key ``<address>/<number>``):

* ``subscribed`` → ``AccountSnapshot`` through :mod:`monitor.venues.dydx.accounts` (a 404 gives
  empty contents and no event). For a parent subaccount, children numbered ≥ 128 hold
  isolated positions whose margin is the child's USDC (margin-math.md §2.4).
* ``channel_data`` deltas carry no equity (the engine recomputes it). Changed perpetual
  positions → ``PositionUpdate`` (size 0 when CLOSED or LIQUIDATED, ``liquidated`` set for the
  latter); an isolated child's USDC change → ``PositionUpdate`` of its position with the new
  isolated margin (``usdc + size·entry``, excluding uPnL); the cross pool's USDC
  (signed: SHORT is negative) → ``BalanceUpdate(cross_cash=…)``. Deltas of a block older than
  the last one applied are refused.

``connected``, ``unsubscribed`` and other control frames give no events; ``error`` frames raise
ParseError.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from monitor.errors import InputError
from monitor.model.events import (
    BalanceUpdate,
    Event,
    FundingRate,
    InstrumentSpec,
    MarkPrice,
    PositionUpdate,
)
from monitor.model.instruments import MarginMode
from monitor.model.positions import Position
from monitor.venues.dydx import accounts
from monitor.venues.dydx.accounts import ISOLATED_CHILD_MIN, MarketInfo
from monitor.venues.parsing import (
    CONTROL,
    Bad,
    Parsed,
    loads,
    lst,
    new_funding_rate,
    new_mark_price,
    num,
    obj,
    parse_error,
    pos_num,
    text,
)

VENUE = accounts.VENUE
FUNDING_INTERVAL_HOURS = 1.0
_SPEC_FIELDS = (
    "initialMarginFraction",
    "maintenanceMarginFraction",
    "openInterestLowerCap",
    "openInterestUpperCap",
)
_ACCOUNT_CHANNELS = ("v4_subaccounts", "v4_parent_subaccounts")
_INF = float("inf")


@dataclass
class _Sub:
    usdc: float = 0.0
    positions: dict[str, tuple[float, float]] = field(default_factory=dict)  # market -> (s, entry)


@dataclass
class _Account:
    parent: bool
    subs: dict[int, _Sub] = field(default_factory=dict)
    block: int = -1
    cross_cash: float = 0.0

    def isolated(self, number: int) -> bool:
        return self.parent and number >= ISOLATED_CHILD_MIN

    def compute_cross_cash(self) -> float:
        return sum(s.usdc for n, s in self.subs.items() if not (self.isolated(n) and s.positions))


def _signed(o: dict[str, Any], what: str) -> float:
    size = num(o.get("size"), f"{what}.size")
    side = o.get("side")
    if side == "SHORT" and size > 0:
        return -size
    if side == "LONG" and size < 0:
        raise Bad(f"{what}.size: negative size on a LONG position")
    return size


def _height(value: Any, what: str) -> int:
    if type(value) is int:
        return value
    if type(value) is str and value.isascii() and value.isdigit():
        return int(value)
    raise Bad(f"{what}: expected a block height, got {str(value)[:40]!r}")


def _iso_ts(value: Any) -> float | None:
    if type(value) is not str:
        return None
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        raise Bad(f"effectiveAt: not an ISO time: {value[:40]!r}") from None


class DydxParser:
    """Keeps the merged markets (needed to price account snapshots) and each subscribed
    subaccount's USDC and positions (to turn deltas into whole positions)."""

    venue = VENUE

    def __init__(self) -> None:
        self._raw: dict[str, dict[str, Any]] = {}
        self.markets: dict[str, MarketInfo] = {}
        self._accounts: dict[str, _Account] = {}
        self._oracle_seen: dict[str, str] = {}
        self._oracle_text: dict[str, str] = {}
        self._at_text = ""
        self._at_ts: float | None = None

    # -- entry points ----------------------------------------------------------------------
    def parse(self, frame: str | bytes, ts_recv: float) -> list[Event]:
        try:
            doc = orjson.loads(frame)
        except orjson.JSONDecodeError:
            return self.parse_frame(frame, ts_recv).events
        try:
            if type(doc) is dict and doc.get("channel") == "v4_markets":
                events = self._markets_frame(doc, ts_recv)
                if events is not None:
                    return events
            return self._frame(doc, ts_recv).events
        except (Bad, InputError) as exc:
            raise parse_error(VENUE, exc, frame) from None

    def parse_frame(self, frame: str | bytes, ts_recv: float) -> Parsed:
        try:
            try:
                doc = orjson.loads(frame)
            except orjson.JSONDecodeError:
                loads(frame)  # raises Bad with the decoder's message
                raise
            if type(doc) is dict and doc.get("channel") == "v4_markets":
                events = self._markets_frame(doc, ts_recv)
                if events is not None:
                    return Parsed("v4_markets", events)
            return self._frame(doc, ts_recv)
        except (Bad, InputError) as exc:
            raise parse_error(VENUE, exc, frame) from None

    def _markets_frame(self, doc: dict[str, Any], ts_recv: float) -> list[Event] | None:
        """A ``v4_markets`` update, batched or not (None: not one; the general path decides).
        Oracle-only updates take the fast path, anything else the validating one."""
        kind = doc.get("type")
        contents = doc.get("contents")
        if kind == "channel_data" and type(contents) is dict:
            items: list[Any] = [contents]
        elif kind == "channel_batch_data" and type(contents) is list:
            items = contents
        else:
            return None
        out: list[Event] = []
        for i, item in enumerate(items):
            if type(item) is dict and len(item) == 1:
                prices = item.get("oraclePrices")
                if type(prices) is dict:
                    events = self._oracle_fast(prices, ts_recv)
                    if events is not None:
                        out.extend(events)
                        continue
            out.extend(self._markets_update(obj(item, f"contents[{i}]"), ts_recv))
        return out

    def _oracle_fast(self, prices: dict[str, Any], ts_recv: float) -> list[Event] | None:
        """The common oracle price update, or None to take the validating path (which also
        handles out-of-order heights and unknown markets). Heights are decimal strings
        without leading zeros: a shorter one, or an equally long one that sorts lower, is
        older."""
        markets = self.markets or None
        seen = self._oracle_seen
        texts = self._oracle_text
        out: list[Event] = []
        try:
            for ticker, o in prices.items():
                p = o["oraclePrice"]
                h = o["effectiveAtHeight"]
                if type(p) is not str or type(h) is not str or not (h.isascii() and h.isdigit()):
                    return None
                last = seen.get(ticker)
                if (
                    last is not None
                    and last != h
                    and (len(h) < len(last) or (len(h) == len(last) and h < last))
                ):
                    return None
                price = float(p)
                if not 0.0 < price < _INF or (markets is not None and ticker not in markets):
                    return None
                at = o["effectiveAt"]
                if at != self._at_text:
                    if type(at) is not str:
                        return None
                    self._at_ts = _iso_ts(at)
                    self._at_text = at
                seen[ticker] = h
                texts[ticker] = p
                out.append(new_mark_price(VENUE, ticker, price, price, self._at_ts, ts_recv))
        except (KeyError, TypeError, ValueError):
            return None  # the validating path says what is wrong
        return out

    def parse_rest(self, name: str, body: str | bytes, ts_recv: float) -> list[Event]:
        """``perpetualMarkets``, ``subaccount:<address>/<n>``,
        ``parentSubaccount:<address>/<n>``."""
        try:
            kind, _, arg = name.partition(":")
            doc = obj(loads(body), "body")
            if kind == "perpetualMarkets":
                return self._markets_snapshot(doc, ts_recv)
            if kind in ("subaccount", "parentSubaccount"):
                if not arg:
                    raise Bad(f"{kind} needs <address>/<n> in the channel name")
                return self._account_snapshot(doc, arg, kind == "parentSubaccount", ts_recv)
            raise Bad(f"unknown REST body {name[:40]!r}")
        except (Bad, InputError) as exc:
            raise parse_error(VENUE, exc, body) from None

    def _frame(self, doc: Any, ts_recv: float) -> Parsed:
        if type(doc) is not dict:
            raise Bad(f"expected an object, got {type(doc).__name__}")
        kind = doc.get("type")
        channel = doc.get("channel")
        if kind in {"channel_data", "channel_batch_data"}:
            contents = doc.get("contents")
            updates = lst(contents, "contents") if kind == "channel_batch_data" else [contents]
            if channel == "v4_markets":
                out: list[Event] = []
                for i, u in enumerate(updates):
                    out.extend(self._markets_update(obj(u, f"contents[{i}]"), ts_recv))
                return Parsed("v4_markets", out)
            if channel in _ACCOUNT_CHANNELS:
                ident = text(doc.get("id"), "id")
                out = []
                for i, u in enumerate(updates):
                    out.extend(self._account_update(ident, obj(u, f"contents[{i}]"), ts_recv))
                return Parsed(f"{channel}:{ident}", out)
            raise Bad(f"unexpected channel {str(channel)[:40]!r}")
        if kind == "subscribed":
            contents = obj(doc.get("contents"), "contents")
            if channel == "v4_markets":
                return Parsed("v4_markets", self._markets_snapshot(contents, ts_recv))
            if channel in _ACCOUNT_CHANNELS:
                ident = text(doc.get("id"), "id")
                events = (
                    self._account_snapshot(
                        contents, ident, channel == "v4_parent_subaccounts", ts_recv
                    )
                    if contents
                    else []
                )
                return Parsed(f"{channel}:{ident}", events)
            raise Bad(f"unexpected channel {str(channel)[:40]!r}")
        if kind in ("connected", "unsubscribed", "pong"):
            return CONTROL
        if kind == "error":
            raise Bad(f"venue error: {str(doc.get('message'))[:160]}")
        raise Bad(f"unexpected message type {str(kind)[:40]!r}")

    # -- markets ---------------------------------------------------------------------------
    def _markets_snapshot(self, doc: dict[str, Any], ts_recv: float) -> list[Event]:
        markets = obj(doc.get("markets"), "markets")
        infos = accounts.markets_from_doc({"markets": markets}, f"{VENUE} markets")
        self._raw = {t: dict(obj(m, f"markets.{t}")) for t, m in markets.items()}
        self.markets = dict(infos)
        self._oracle_seen.clear()
        self._oracle_text.clear()
        out: list[Event] = []
        for ticker, info in infos.items():
            out.append(InstrumentSpec(info.instrument, None, ts_recv))
            p = info.oracle_price
            out.append(MarkPrice(VENUE, ticker, p, p, None, ts_recv))
            if info.next_funding_rate is not None:
                out.append(
                    FundingRate(
                        VENUE,
                        ticker,
                        info.next_funding_rate,
                        FUNDING_INTERVAL_HOURS,
                        None,
                        None,
                        ts_recv,
                    )
                )
        return out

    def _markets_update(self, contents: dict[str, Any], ts_recv: float) -> list[Event]:
        out: list[Event] = []
        prices = contents.get("oraclePrices")
        if prices is not None:
            for ticker, raw in obj(prices, "oraclePrices").items():
                o = obj(raw, f"oraclePrices.{ticker}")
                if self.markets and ticker not in self.markets:
                    raise Bad(f"oraclePrices: unknown market {ticker[:40]!r}")
                price = pos_num(o.get("oraclePrice"), f"oraclePrices.{ticker}.oraclePrice")
                h_raw = o.get("effectiveAtHeight")
                if h_raw is not None:
                    h = _height(h_raw, f"oraclePrices.{ticker}.effectiveAtHeight")
                    text_h = str(h)
                    last = self._oracle_seen.get(ticker)
                    if last is not None and (len(text_h), text_h) < (len(last), last):
                        continue  # older than what we already have
                    self._oracle_seen[ticker] = text_h
                self._oracle_text[ticker] = o["oraclePrice"]
                out.append(
                    MarkPrice(VENUE, ticker, price, price, _iso_ts(o.get("effectiveAt")), ts_recv)
                )
        trading = contents.get("trading")
        if trading is not None:
            for ticker, raw in obj(trading, "trading").items():
                out.extend(self._trading(ticker, obj(raw, f"trading.{ticker}"), ts_recv))
        if prices is None and trading is None:
            raise Bad("markets update without oraclePrices or trading")
        return out

    def _trading(self, ticker: str, t: dict[str, Any], ts_recv: float) -> list[Event]:
        """Merge one market's trading update; a FundingRate for a new ``nextFundingRate``, an
        InstrumentSpec when margin fractions or open-interest caps changed."""
        merged = self._raw.get(ticker)
        if merged is None:
            if self.markets and "maintenanceMarginFraction" not in t:
                raise Bad(f"trading: unknown market {ticker[:40]!r}")
            merged = {}
            changed_spec = True
        else:
            changed_spec = ticker not in self.markets
            for k in _SPEC_FIELDS:
                if k in t and t[k] != merged.get(k):
                    changed_spec = True
                    break
        out: list[Event] = []
        rate_raw = t.get("nextFundingRate")
        if rate_raw is not None:
            rate = num(rate_raw, f"trading.{ticker}.nextFundingRate")
            out.append(
                new_funding_rate(VENUE, ticker, rate, FUNDING_INTERVAL_HOURS, None, None, ts_recv)
            )
        if not changed_spec:
            merged.update(t)
            return out
        candidate = {**merged, **t}
        latest = self._oracle_text.get(ticker)
        if latest is not None and "oraclePrice" not in t:
            candidate["oraclePrice"] = latest  # open interest is valued at it
        if "maintenanceMarginFraction" in candidate:
            info = accounts.market_info(ticker, candidate, f"{VENUE} markets", f"trading.{ticker}")
            self.markets[ticker] = info
            out.append(InstrumentSpec(info.instrument, None, ts_recv))
        self._raw[ticker] = candidate
        return out

    # -- accounts --------------------------------------------------------------------------
    def _account_snapshot(
        self, doc: dict[str, Any], ident: str, parent: bool, ts_recv: float
    ) -> list[Event]:
        if not self.markets:
            raise Bad("subaccount snapshot before any markets snapshot")
        snap = accounts.subaccount_to_snapshot(
            doc, self.markets, f"{VENUE} subaccount", account=ident, ts_recv=ts_recv
        )
        acct = _Account(parent=parent)
        sub = obj(doc.get("subaccount"), "subaccount")
        children = lst(sub.get("childSubaccounts"), "childSubaccounts") if parent else [sub]
        for i, raw in enumerate(children):
            c = obj(raw, f"childSubaccounts[{i}]")
            n_raw = c.get("subaccountNumber", 0)
            number = int(num(n_raw, "subaccountNumber"))
            s = acct.subs.setdefault(number, _Sub())
            usdc = obj(c.get("assetPositions") or {}, "assetPositions").get("USDC")
            if usdc is not None:
                s.usdc = _signed(obj(usdc, "assetPositions.USDC"), "assetPositions.USDC")
            perps = obj(c.get("openPerpetualPositions") or {}, "openPerpetualPositions")
            for ticker, p_raw in perps.items():
                p = obj(p_raw, f"openPerpetualPositions.{ticker}")
                if p.get("status", "OPEN") != "OPEN":
                    continue
                size = _signed(p, ticker)
                if size != 0.0:
                    s.positions[ticker] = (size, num(p.get("entryPrice"), f"{ticker}.entryPrice"))
        block = doc.get("blockHeight")
        acct.block = _height(block, "blockHeight") if block is not None else -1
        acct.cross_cash = acct.compute_cross_cash()
        self._accounts[ident] = acct
        return [snap]

    def _position(
        self, market: str, size: float, entry: float, isolated_margin: float | None
    ) -> Position:
        info = self.markets.get(market)
        oracle = info.oracle_price if info is not None else None
        return Position(
            symbol=market,
            size=size,
            entry_price=entry,
            margin_mode=MarginMode.CROSS if isolated_margin is None else MarginMode.ISOLATED,
            isolated_margin=isolated_margin,
            maintenance=info.instrument.maintenance if info is not None else None,
            initial_margin_rate=info.instrument.initial_margin_rate if info is not None else None,
            mark_price=oracle,
            oracle_price=oracle,
            funding_rate=info.next_funding_rate if info is not None else None,
            funding_interval_hours=FUNDING_INTERVAL_HOURS,
        )

    def _account_update(self, ident: str, contents: dict[str, Any], ts_recv: float) -> list[Event]:
        acct = self._accounts.get(ident)
        if acct is None:
            raise Bad(f"subaccount update for {ident[:60]!r} before its snapshot")
        block_raw = contents.get("blockHeight")
        if block_raw is not None:
            block = _height(block_raw, "blockHeight")
            if block < acct.block:
                raise Bad(f"out-of-order subaccount update: block {block} < {acct.block}")
            acct.block = block
        default_number = int(ident.rpartition("/")[2]) if ident.rpartition("/")[2].isdigit() else 0
        touched: dict[tuple[int, str], bool] = {}  # (number, market) -> liquidated
        assets_touched: set[int] = set()
        for i, raw in enumerate(
            lst(contents.get("perpetualPositions") or [], "perpetualPositions")
        ):
            p = obj(raw, f"perpetualPositions[{i}]")
            market = text(p.get("market"), f"perpetualPositions[{i}].market")
            if self.markets and market not in self.markets:
                raise Bad(f"perpetualPositions[{i}]: unknown market {market[:40]!r}")
            number = p.get("subaccountNumber", default_number)
            number = int(num(number, f"perpetualPositions[{i}].subaccountNumber"))
            status = p.get("status", "OPEN")
            size = _signed(p, f"perpetualPositions[{i}]")
            s = acct.subs.setdefault(number, _Sub())
            if status == "OPEN" and size != 0.0:
                entry = pos_num(p.get("entryPrice"), f"perpetualPositions[{i}].entryPrice")
                s.positions[market] = (size, entry)
            else:
                s.positions.pop(market, None)
            touched[(number, market)] = status == "LIQUIDATED"
        for i, raw in enumerate(lst(contents.get("assetPositions") or [], "assetPositions")):
            a = obj(raw, f"assetPositions[{i}]")
            if a.get("symbol") != "USDC":
                continue
            number = a.get("subaccountNumber", default_number)
            number = int(num(number, f"assetPositions[{i}].subaccountNumber"))
            acct.subs.setdefault(number, _Sub()).usdc = _signed(a, f"assetPositions[{i}]")
            assets_touched.add(number)
        for number in assets_touched:
            if acct.isolated(number):
                for market in acct.subs[number].positions:
                    touched.setdefault((number, market), False)
        out: list[Event] = []
        for (number, market), liquidated in touched.items():
            s = acct.subs[number]
            held = s.positions.get(market)
            isolated = acct.isolated(number)
            if held is None:
                pos = self._position(market, 0.0, 0.0, None)
            else:
                size, entry = held
                margin = s.usdc + size * entry if isolated else None
                pos = self._position(market, size, entry, margin)
            out.append(PositionUpdate(VENUE, ident, pos, liquidated=liquidated, ts_recv=ts_recv))
        cash = acct.compute_cross_cash()
        if cash != acct.cross_cash or any(not acct.isolated(n) for n in assets_touched):
            acct.cross_cash = cash
            out.append(BalanceUpdate(VENUE, ident, cross_cash=cash, ts_recv=ts_recv))
        return out
