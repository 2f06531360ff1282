"""dYdX v4 indexer frames → normalized events (pure; feeds.md §2, margin-math.md §2).

The venue name in events is :data:`VENUE`. dYdX has no mark price: every price is the oracle
price, emitted as ``MarkPrice(mark=oracle, oracle=oracle)``. Funding is hourly:
``nextFundingRate`` becomes ``FundingRate(rate, interval_hours=1)`` (positive = longs pay).

WebSocket ``v4_markets``:

* ``subscribed`` (= the REST ``/v4/perpetualMarkets`` body): per priced market an
  ``InstrumentSpec`` (MMF as a flat maintenance rate, IMF (open-interest scaled) as
  ``initial_margin_rate``, funding interval 1 h), a ``MarkPrice`` and a ``FundingRate``. A
  market with a null or missing oracle price (a new listing) or unusable fields is skipped, the
  others are read; a skipped market is learnt when its first oracle price arrives;
* ``channel_data`` / ``channel_batch_data`` (``contents`` an object or a list of them):
  ``oraclePrices`` → ``MarkPrice``; ``trading`` → merged into the market (a market listed
  mid-session is learnt from it); a new ``nextFundingRate`` → ``FundingRate``; changed margin
  fractions or open-interest caps → a new ``InstrumentSpec``. One bad entry of an oracle batch
  costs that entry only (kept in :attr:`DydxParser.notes`); a frame none of whose entries is
  usable is refused.

WebSocket ``v4_subaccounts`` / ``v4_parent_subaccounts`` (subscription id ``<address>/<n>``):
every subaccount is its own margin pool and its own account ``<address>/<number>`` (a parent
subscription reports the parent and each child ``n + 128·k``; accounts.py):

* ``subscribed`` → one ``AccountSnapshot`` per subaccount (a 404 gives empty contents and no
  event);
* ``channel_data`` deltas carry no equity (the engine recomputes it). Changed perpetual
  positions → ``PositionUpdate`` of that subaccount's account (size 0 when CLOSED or
  LIQUIDATED); a USDC change → ``BalanceUpdate(cross_cash=…)`` (signed: SHORT is negative); a
  subaccount first seen in a delta (a new child) → an ``AccountSnapshot`` of it. ``fills``
  (indexer ``FillType``): ``LIQUIDATED`` (the subaccount was liquidated) and ``DELEVERAGED``
  (the subaccount was the bankrupt side of a deleveraging, closed against others) set
  ``liquidated`` on that market's ``PositionUpdate``, partial ones included; ``OFFSETTING``
  (the subaccount's position was used to offset a bankrupt one: auto-deleveraging, ADL) becomes
  a :class:`Deleveraged` event, emitted before the frame's position and balance updates. A fill
  without ``subaccountNumber`` on a parent subscription goes to the one subaccount that holds
  or just changed that market (else to the parent).

Ordering guards: oracle prices older (by ``effectiveAtHeight``) than the last of that ticker
are dropped, but after :data:`RESYNC_AFTER` drops in a row the next price is taken (a poisoned
height cannot freeze a price); account deltas of a block older than the last applied are
refused. A height beyond ``last known height + HEIGHT_SLACK + BLOCKS_PER_SECOND·Δt`` (Δt the
receive-clock time since that height was seen) is implausible and refused. An ``effectiveAt``
more than :data:`MAX_AHEAD_SECONDS` after the receive time is no ordering key here, so the price
is kept and its implausible time dropped (``ts_event`` None; counted in ``implausible_times``).
A REST snapshot always resynchronises an account (its height replaces the last one, whatever it
was); refused deltas put the subscription in :attr:`DydxParser.resync` for the feed to
re-snapshot.

Magnitudes beyond :data:`~monitor.venues.dydx.accounts.MAX_MAGNITUDE` (1e15) and non-finite
numbers are refused. ``connected``, ``unsubscribed`` and other control frames give no events;
``error`` frames raise ParseError.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from monitor.errors import InputError
from monitor.model.events import (
    BalanceUpdate,
    Deleveraged,
    Event,
    FundingRate,
    InstrumentSpec,
    MarkPrice,
    PositionUpdate,
)
from monitor.model.positions import Position
from monitor.venues.dydx import accounts
from monitor.venues.dydx.accounts import (
    CHILD_STRIDE,
    MAX_MAGNITUDE,
    MarketInfo,
    SubaccountState,
)
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
#: dYdX makes about one block a second; a height may run ahead of the last one seen by at most
#: this many blocks per receive-clock second, plus HEIGHT_SLACK
BLOCKS_PER_SECOND = 10.0
HEIGHT_SLACK = 100_000
#: a venue timestamp this far ahead of the receive clock is implausible
MAX_AHEAD_SECONDS = 300.0
#: at most this many skipped-entry notes wait to be drained
MAX_NOTES = 1_000
#: this many older oracle prices of one ticker in a row and the next one is taken anyway
RESYNC_AFTER = 3
#: refused account deltas in a row before the subscription asks for a REST re-snapshot
RESNAPSHOT_AFTER = 3
_LIQUIDATED = "LIQUIDATED"
#: the bankrupt side of a deleveraging: closed against others, a liquidation for its owner
_DELEVERAGED = "DELEVERAGED"
#: the side whose position offset a bankrupt one: auto-deleveraged (ADL)
_OFFSETTING = "OFFSETTING"
_CLOSED_BY_VENUE = (_LIQUIDATED, _DELEVERAGED)


@dataclass
class _Stream:
    """One account subscription: a subaccount, or a parent and its children."""

    address: str
    number: int
    parent: bool
    subs: dict[int, SubaccountState] = field(default_factory=dict)
    block: int = -1
    refused: int = 0

    def account(self, n: int) -> str:
        return f"{self.address}/{n}"

    def owns(self, n: int) -> bool:
        return n % CHILD_STRIDE == self.number if self.parent else n == self.number


def _bnum(value: Any, what: str) -> float:
    """A finite number no larger in magnitude than any venue can produce."""
    out = num(value, what)
    if abs(out) > MAX_MAGNITUDE:
        raise Bad(f"{what}: magnitude {out:.4g} is beyond any venue's (limit {MAX_MAGNITUDE:g})")
    return out


def _bpos(value: Any, what: str) -> float:
    out = _bnum(value, what)
    if out <= 0.0:
        raise Bad(f"{what}: must be positive, got {value!r}")
    return out


def _signed(o: dict[str, Any], what: str) -> float:
    size = _bnum(o.get("size"), f"{what}.size")
    side = o.get("side")
    if side == "SHORT" and size > 0:
        return -size
    if side == "LONG" and size < 0:
        raise Bad(f"{what}.size: negative size on a LONG position")
    return size


def _height(value: Any, what: str) -> int:
    if type(value) is int and value >= 0:
        return value
    if type(value) is str and value.isascii() and value.isdigit() and len(value) <= 18:
        return int(value)
    raise Bad(f"{what}: expected a block height, got {str(value)[:40]!r}")


def _number(value: Any, default: int, what: str) -> int:
    if value is None:
        return default
    try:
        return accounts.subaccount_number(value, "frame", what)
    except InputError as exc:
        raise Bad(f"{what}: {exc.problem}") from None


def _iso_ts(value: Any) -> float | None:
    if type(value) is not str:
        return None
    try:
        return datetime.fromisoformat(value).timestamp()
    except (ValueError, OverflowError, OSError):
        raise Bad(f"effectiveAt: not an ISO time: {value[:40]!r}") from None


class DydxParser:
    """Keeps the merged markets (needed to price account snapshots) and each subscription's
    subaccounts (to turn deltas into whole positions).

    ``notes``: problems of single entries skipped while their frame was accepted (the feed
    drains, logs and counts them); ``resync``: subscription ids whose deltas were refused and
    that want a REST re-snapshot (the feed clears them once done)."""

    venue = VENUE

    def __init__(self) -> None:
        self._raw: dict[str, dict[str, Any]] = {}
        self.markets: dict[str, MarketInfo] = {}
        self.unpriced: dict[str, str] = {}
        self._streams: dict[str, _Stream] = {}
        self._oracle_h: dict[str, int] = {}
        self._oracle_older: dict[str, int] = {}
        self._oracle_text: dict[str, str] = {}
        self._at_text = ""
        self._at_ts: float | None = None
        self._chain_h: int | None = None
        self._chain_ts = 0.0
        self.notes: list[str] = []
        self.resync: set[str] = set()
        self.implausible_times = 0

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

    def _note(self, note: str) -> None:
        if len(self.notes) < MAX_NOTES:  # bounded when nobody drains them (replays)
            self.notes.append(note)

    def drain_notes(self) -> list[str]:
        out, self.notes = self.notes, []
        return out

    # -- ordering --------------------------------------------------------------------------
    def height_limit(self, ts_recv: float) -> float:
        """The highest plausible block height at ``ts_recv`` (inf before any height)."""
        if self._chain_h is None:
            return float("inf")
        return self._chain_h + HEIGHT_SLACK + BLOCKS_PER_SECOND * max(ts_recv - self._chain_ts, 0.0)

    def _saw_height(self, h: int, ts_recv: float) -> None:
        if self._chain_h is None or h > self._chain_h:
            self._chain_h = h
            self._chain_ts = ts_recv

    def _check_height(self, h: int, ts_recv: float, what: str) -> None:
        limit = self.height_limit(ts_recv)
        if h > limit:
            raise Bad(f"{what}: implausible block height {h} (at most {limit:.0f} by now)")

    # -- markets ---------------------------------------------------------------------------
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
        handles older or implausible heights, unknown markets and says what is wrong). State
        written before a None is the same the validating path writes for those entries."""
        markets = self.markets or None
        seen = self._oracle_h
        texts = self._oracle_text
        older = self._oracle_older
        chain = self._chain_h
        if chain is None:
            limit = _INF
        else:
            dt = ts_recv - self._chain_ts
            limit = chain + HEIGHT_SLACK + (BLOCKS_PER_SECOND * dt if dt > 0.0 else 0.0)
        top = -1
        ahead = ts_recv + MAX_AHEAD_SECONDS
        biggest = MAX_MAGNITUDE
        out: list[Event] = []
        try:
            for ticker, o in prices.items():
                p = o["oraclePrice"]
                h_text = o["effectiveAtHeight"]
                if type(p) is not str or type(h_text) is not str:
                    return None
                if not (h_text.isascii() and h_text.isdigit() and len(h_text) <= 18):
                    return None
                h = int(h_text)
                last = seen.get(ticker)
                if (last is not None and h < last) or h > limit:
                    return None
                # the validating path learns the chain height entry by entry: so do we
                limit = min(limit, h + HEIGHT_SLACK)
                price = float(p)
                if not 0.0 < price <= biggest or (markets is not None and ticker not in markets):
                    return None
                at = o["effectiveAt"]
                if at != self._at_text:
                    if type(at) is not str:
                        return None
                    self._at_ts = _iso_ts(at)
                    self._at_text = at
                at_ts = self._at_ts
                if at_ts is not None and at_ts > ahead:
                    at_ts = None  # implausible venue time: the receive time stands in
                    self.implausible_times += 1
                seen[ticker] = h
                texts[ticker] = p
                if older:
                    older.pop(ticker, None)
                if h > top:  # noqa: PLR1730 (a call to max costs more on this path)
                    top = h
                out.append(new_mark_price(VENUE, ticker, price, price, at_ts, ts_recv))
        except (KeyError, TypeError, ValueError, Bad):
            return None  # the validating path says what is wrong (and records the heights)
        if top >= 0 and (chain is None or top > chain):
            self._chain_h = top
            self._chain_ts = ts_recv
        return out

    def parse_rest(self, name: str, body: str | bytes, ts_recv: float) -> list[Event]:
        """``perpetualMarkets``, ``subaccount:<address>/<n>``,
        ``parentSubaccount:<address>/<n>``. A subaccount body resynchronises the account."""
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
        if kind in ("channel_data", "channel_batch_data"):
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

    def _market_events(self, info: MarketInfo, ts_recv: float) -> list[Event]:
        ticker = info.instrument.symbol
        p = info.oracle_price
        out: list[Event] = [
            InstrumentSpec(info.instrument, None, ts_recv),
            MarkPrice(VENUE, ticker, p, p, None, ts_recv),
        ]
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

    def _markets_snapshot(self, doc: dict[str, Any], ts_recv: float) -> list[Event]:
        markets = obj(doc.get("markets"), "markets")
        read = accounts.read_markets({"markets": markets}, f"{VENUE} markets")
        previous, previous_raw = self.markets, self._raw
        self._raw = {t: dict(m) for t, m in markets.items() if type(m) is dict}
        self.markets = dict(read.infos)
        self.unpriced = dict(read.skipped)
        for ticker, why in read.skipped.items():
            known = previous.get(ticker)
            if known is not None:
                # a re-sent snapshot (after a reconnect) with a bad entry for a market we
                # know: keep what we know rather than forget it (fail closed per entry)
                self.markets[ticker] = known
                self.unpriced.pop(ticker, None)
                if ticker in previous_raw:
                    self._raw[ticker] = previous_raw[ticker]
                self._note(f"market {ticker[:40]!r}: bad entry kept as known: {why[:120]}")
                continue
            self._note(f"market {ticker[:40]!r} not priced: {why[:120]}")
        for ticker, known in previous.items():
            if ticker not in self.markets and ticker not in markets:
                # absent from a re-sent snapshot: a market with positions on it is not delisted
                # between two snapshots, so it stays known (its prices keep flowing)
                self.markets[ticker] = known
                if ticker in previous_raw:
                    self._raw[ticker] = previous_raw[ticker]
        self._oracle_h.clear()
        self._oracle_older.clear()
        self._oracle_text.clear()
        out: list[Event] = []
        for info in read.infos.values():
            out.extend(self._market_events(info, ts_recv))
        return out

    def _markets_update(self, contents: dict[str, Any], ts_recv: float) -> list[Event]:
        out: list[Event] = []
        prices = contents.get("oraclePrices")
        if prices is not None:
            entries = obj(prices, "oraclePrices")
            problems: list[str] = []
            for ticker, raw in entries.items():
                try:
                    out.extend(self._oracle_entry(ticker, raw, ts_recv))
                except (Bad, InputError) as exc:
                    problems.append(exc.args[0] if isinstance(exc, Bad) else str(exc))
            if problems:
                if len(problems) == len(entries):
                    raise Bad(problems[0])
                for problem in problems:
                    self._note(f"oraclePrices entry skipped: {problem[:160]}")
        trading = contents.get("trading")
        if trading is not None:
            for ticker, raw in obj(trading, "trading").items():
                out.extend(self._trading(ticker, obj(raw, f"trading.{ticker}"), ts_recv))
        if prices is None and trading is None:
            raise Bad("markets update without oraclePrices or trading")
        return out

    def _oracle_entry(self, ticker: str, raw: Any, ts_recv: float) -> list[Event]:
        """One oracle price: [] when older than the ticker's last one; learns a listed market
        whose price was unknown; refuses unknown markets and implausible heights or times."""
        o = obj(raw, f"oraclePrices.{ticker}")
        learn = bool(self.markets) and ticker not in self.markets
        if learn and ticker not in self._raw:
            raise Bad(f"oraclePrices: unknown market {ticker[:40]!r}")
        price = _bpos(o.get("oraclePrice"), f"oraclePrices.{ticker}.oraclePrice")
        at = _iso_ts(o.get("effectiveAt"))
        if at is not None and at > ts_recv + MAX_AHEAD_SECONDS:
            at = None  # implausible venue time: the receive time stands in
            self.implausible_times += 1
        h_raw = o.get("effectiveAtHeight")
        h: int | None = None
        if h_raw is not None:
            h = _height(h_raw, f"oraclePrices.{ticker}.effectiveAtHeight")
            self._check_height(h, ts_recv, f"oraclePrices.{ticker}.effectiveAtHeight")
            last = self._oracle_h.get(ticker)
            if last is not None and h < last:
                n = self._oracle_older.get(ticker, 0) + 1
                if n <= RESYNC_AFTER:
                    self._oracle_older[ticker] = n
                    return []  # older than what we already have
                self._note(
                    f"oraclePrices.{ticker[:40]}: {n} older heights in a row; "
                    f"resynchronised from {last} to {h}"
                )
        out: list[Event] = []
        if learn:
            candidate = {**self._raw[ticker], "oraclePrice": o["oraclePrice"]}
            try:
                info = accounts.market_info(ticker, candidate, f"{VENUE} markets", ticker)
            except InputError as exc:
                raise Bad(f"oraclePrices: market {ticker[:40]!r} unusable: {exc.problem}") from None
            self.markets[ticker] = info
            self.unpriced.pop(ticker, None)
            self._raw[ticker] = candidate
            out.append(InstrumentSpec(info.instrument, None, ts_recv))
        if h is not None:
            self._oracle_h[ticker] = h
            self._saw_height(h, ts_recv)
        self._oracle_older.pop(ticker, None)
        self._oracle_text[ticker] = o["oraclePrice"]
        out.append(MarkPrice(VENUE, ticker, price, price, at, ts_recv))
        return out

    def _trading(self, ticker: str, t: dict[str, Any], ts_recv: float) -> list[Event]:
        """Merge one market's trading update; a FundingRate for a new ``nextFundingRate``, an
        InstrumentSpec when margin fractions or open-interest caps changed (or a market listed
        mid-session becomes usable)."""
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
            rate = _bnum(rate_raw, f"trading.{ticker}.nextFundingRate")
            out.append(
                new_funding_rate(VENUE, ticker, rate, FUNDING_INTERVAL_HOURS, None, None, ts_recv)
            )
        if not changed_spec:
            merged.update(t)
            return out
        candidate = {**merged, **t}
        latest = self._oracle_text.get(ticker)
        if t.get("oraclePrice") is None:  # open interest is valued at the latest price
            known = latest if latest is not None else merged.get("oraclePrice")
            if known is not None:
                candidate["oraclePrice"] = known
        self._raw[ticker] = candidate
        if "maintenanceMarginFraction" in candidate:
            if candidate.get("oraclePrice") is None:
                self.unpriced[ticker] = "no oracle price yet"
                return out  # learnt when its price arrives
            info = accounts.market_info(ticker, candidate, f"{VENUE} markets", f"trading.{ticker}")
            self.markets[ticker] = info
            self.unpriced.pop(ticker, None)
            out.append(InstrumentSpec(info.instrument, None, ts_recv))
        return out

    # -- accounts --------------------------------------------------------------------------
    def _stream_id(self, ident: str) -> tuple[str, int]:
        address, _, n = ident.rpartition("/")
        if not address:
            raise Bad(f"subscription id {ident[:60]!r}: expected <address>/<number>")
        return address, _number(n, 0, "id")

    def _account_snapshot(
        self, doc: dict[str, Any], ident: str, parent: bool, ts_recv: float
    ) -> list[Event]:
        if not self.markets:
            raise Bad("subaccount snapshot before any markets snapshot")
        address, number = self._stream_id(ident)
        source = f"{VENUE} subaccount"
        _, doc_number, doc_parent, states = accounts.read_subaccounts(
            doc, source, default_number=number
        )
        if doc_parent != parent or doc_number != number:
            raise Bad(
                f"snapshot of {'parent ' if doc_parent else ''}subaccount {doc_number} "
                f"on the subscription {ident[:60]!r}"
            )
        snaps = [
            accounts.state_to_snapshot(
                s,
                f"{address}/{s.number}",
                self.markets,
                f"{VENUE} markets",
                skipped=self.unpriced,
                ts_recv=ts_recv,
            )
            for s in states
        ]
        stream = _Stream(address, number, parent, {s.number: s for s in states})
        block = doc.get("blockHeight")
        if block is None:
            sub = doc.get("subaccount")
            block = sub.get("latestProcessedBlockHeight") if type(sub) is dict else None
        if block is not None:
            stream.block = _height(block, "blockHeight")
            self._check_height(stream.block, ts_recv, "blockHeight")
            self._saw_height(stream.block, ts_recv)
        self._streams[ident] = stream
        self.resync.discard(ident)
        out: list[Event] = list(snaps)
        return out

    def _position(self, market: str, size: float, entry: float) -> Position:
        pos = accounts.position_of(market, size, entry, self.markets)
        if pos is None:
            raise Bad(f"market {market[:40]!r} not priced")
        return pos

    def _refuse(self, stream: _Stream, ident: str, problem: str, *, now: bool) -> Bad:
        stream.refused += 1
        if now or stream.refused >= RESNAPSHOT_AFTER:
            self.resync.add(ident)
        return Bad(problem)

    def _account_update(self, ident: str, contents: dict[str, Any], ts_recv: float) -> list[Event]:
        stream = self._streams.get(ident)
        if stream is None:
            self.resync.add(ident)
            raise Bad(f"subaccount update for {ident[:60]!r} before its snapshot")
        block_raw = contents.get("blockHeight")
        block: int | None = None
        if block_raw is not None:
            block = _height(block_raw, "blockHeight")
            if block < stream.block:
                raise self._refuse(
                    stream,
                    ident,
                    f"out-of-order subaccount update: block {block} < {stream.block}",
                    now=False,
                )
            if block > self.height_limit(ts_recv):
                raise self._refuse(
                    stream,
                    ident,
                    f"implausible block height {block} "
                    f"(at most {self.height_limit(ts_recv):.0f} by now)",
                    now=True,
                )
        try:
            out = self._apply_update(stream, contents, ts_recv)
        except Bad as exc:
            raise self._refuse(stream, ident, exc.args[0], now=True) from None
        if block is not None:
            stream.block = block
            self._saw_height(block, ts_recv)
        stream.refused = 0
        return out

    @staticmethod
    def _fill_owner(
        stream: _Stream, market: str, changes: list[tuple[int, str, float, float, bool]]
    ) -> int:
        """The subaccount a fill without ``subaccountNumber`` belongs to: on a parent
        subscription the one subaccount that changed or holds ``market``, else the subscribed
        one."""
        if not stream.parent:
            return stream.number
        owners = {c[0] for c in changes if c[1] == market}
        if not owners:
            owners = {n for n, s in stream.subs.items() if market in s.positions}
        return owners.pop() if len(owners) == 1 else stream.number

    def _apply_update(
        self, stream: _Stream, contents: dict[str, Any], ts_recv: float
    ) -> list[Event]:
        """Validates the whole delta first, then applies it (a refused delta changes nothing)."""
        default = stream.number
        pos_changes: list[tuple[int, str, float, float, bool]] = []
        for i, raw in enumerate(
            lst(contents.get("perpetualPositions") or [], "perpetualPositions")
        ):
            what = f"perpetualPositions[{i}]"
            p = obj(raw, what)
            market = text(p.get("market"), f"{what}.market")
            n = _number(p.get("subaccountNumber"), default, f"{what}.subaccountNumber")
            if not stream.owns(n):
                raise Bad(f"{what}: subaccount {n} is not part of this subscription")
            status = p.get("status", "OPEN")
            size = _signed(p, what)
            if status == "OPEN" and size != 0.0:
                if market not in self.markets:
                    raise Bad(f"{what}: market {market[:40]!r} not priced")
                entry = _bpos(p.get("entryPrice"), f"{what}.entryPrice")
                pos_changes.append((n, market, size, entry, False))
            else:
                pos_changes.append((n, market, 0.0, 0.0, status == _LIQUIDATED))
        cash_changes: list[tuple[int, float]] = []
        for i, raw in enumerate(lst(contents.get("assetPositions") or [], "assetPositions")):
            what = f"assetPositions[{i}]"
            a = obj(raw, what)
            if a.get("symbol") != "USDC":
                continue
            n = _number(a.get("subaccountNumber"), default, f"{what}.subaccountNumber")
            if not stream.owns(n):
                raise Bad(f"{what}: subaccount {n} is not part of this subscription")
            cash_changes.append((n, _signed(a, what)))
        liquidated: set[tuple[int, str]] = set()
        deleveraged: list[Event] = []
        for i, raw in enumerate(lst(contents.get("fills") or [], "fills")):
            what = f"fills[{i}]"
            f = obj(raw, what)
            kind = f.get("type")
            if kind not in (_LIQUIDATED, _DELEVERAGED, _OFFSETTING):
                continue
            market = text(f.get("ticker") or f.get("market"), f"{what}.ticker")
            n = _number(
                f.get("subaccountNumber"),
                self._fill_owner(stream, market, pos_changes),
                f"{what}.subaccountNumber",
            )
            if not stream.owns(n):
                raise Bad(f"{what}: subaccount {n} is not part of this subscription")
            size = _bpos(f.get("size"), f"{what}.size")
            price = _bpos(f.get("price"), f"{what}.price")
            side = f.get("side")
            if side not in ("BUY", "SELL"):
                raise Bad(f"{what}.side: expected BUY or SELL, got {str(side)[:20]!r}")
            if kind in _CLOSED_BY_VENUE:
                liquidated.add((n, market))
            else:
                at = f.get("createdAt")
                ts_event = _iso_ts(at) if type(at) is str else None
                # the signed change of the position: a BUY adds (a short was reduced),
                # a SELL takes away (a long was reduced)
                signed = size if side == "BUY" else -size
                deleveraged.append(
                    Deleveraged(VENUE, stream.account(n), market, signed, price, ts_event, ts_recv)
                )
        # -- apply ----------------------------------------------------------------------
        new_subs: list[int] = []

        def sub(n: int) -> SubaccountState:
            s = stream.subs.get(n)
            if s is None:
                s = stream.subs[n] = SubaccountState(n)
                new_subs.append(n)
            return s

        touched: dict[tuple[int, str], bool] = {}
        for n, market, size, entry, liq in pos_changes:
            s = sub(n)
            if size != 0.0:
                s.positions[market] = (size, entry)
            else:
                s.positions.pop(market, None)
            touched[(n, market)] = touched.get((n, market), False) or liq
        for n, market in liquidated:
            sub(n)
            touched[(n, market)] = True
        cash_touched: set[int] = set()
        for n, usdc in cash_changes:
            sub(n).usdc = usdc
            cash_touched.add(n)
        out: list[Event] = list(deleveraged)
        for n in new_subs:
            s = stream.subs[n]
            out.append(
                accounts.state_to_snapshot(
                    s, stream.account(n), self.markets, f"{VENUE} markets", ts_recv=ts_recv
                )
            )
        fresh = set(new_subs)
        for (n, market), liq in touched.items():
            if n in fresh:
                continue
            held = stream.subs[n].positions.get(market)
            if held is None:
                pos = accounts.position_of(market, 0.0, 0.0, self.markets) or Position(
                    symbol=market, size=0.0, entry_price=0.0
                )
            else:
                pos = self._position(market, held[0], held[1])
            out.append(
                PositionUpdate(VENUE, stream.account(n), pos, liquidated=liq, ts_recv=ts_recv)
            )
        for n in sorted(cash_touched - fresh):
            out.append(
                BalanceUpdate(
                    VENUE, stream.account(n), cross_cash=stream.subs[n].usdc, ts_recv=ts_recv
                )
            )
        return out
