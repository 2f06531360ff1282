"""Hyperliquid wire frames → normalized events (pure; feeds.md §1).

WebSocket channels:

* ``activeAssetCtx`` → ``MarkPrice(mark=markPx, oracle=oraclePx)``, and
  ``FundingRate(rate=funding, interval_hours=1)`` (the hourly rate; positive = longs pay) when
  the coin's funding differs from the last one this parser emitted (every push repeats it).
  The push has no timestamp: ``ts_event`` stays None, ``ts_recv`` is the receive time.
* ``clearinghouseState`` → ``AccountSnapshot`` through :mod:`monitor.venues.hyperliquid.accounts`.
  The account is the lower-case user address, suffixed ``@<dex>`` for a HIP-3 dex (each dex
  is its own clearinghouse). Ordering guard (fail closed, issue 10): a push older (``time``)
  than the last one of that account is refused; a ``time`` more than ``MAX_FUTURE_SKEW``
  seconds ahead of the receive clock is refused too, so one poisoned ``time`` cannot become a
  high-water mark that blocks every later push; after ``RESYNC_AFTER`` consecutive refused
  pushes of one account the parser takes the newest push as the truth, counts an
  ``ordering_resyncs`` and lists the user in ``resync_wanted`` (the feed re-fetches it over
  REST). The plausibility bound applies when ``ts_recv`` is a wall-clock time (after 2001):
  tests and synthetic replays stamp frames with small numbers.
  In a unified or portfolio-margin account (the mode comes from REST ``userAbstraction``) the
  per-dex states are stored and the account's pools come from
  :func:`~monitor.venues.hyperliquid.accounts.pooled_snapshots` with the spot state.
* ``spotState`` (``{"user":…,"spotState":{…}}``) → stored; a pooled account's snapshots.
* ``userFills`` → ``Deleveraged`` for a fill whose ``dir`` is ``"Auto-Deleveraging"``,
  ``Liquidated`` for a fill whose ``liquidation.liquidatedUser`` is the user (or whose ``dir``
  starts with ``"Liquidated"``); other fills (including the liquidator's side of someone else's
  liquidation) emit nothing. The first message (``isSnapshot``) only sets the high-water mark
  (history is not news); later snapshots after a reconnect emit only fills newer than it.
* ``userFundings`` → ``FundingPayment`` per payment (``usdc`` < 0: the user paid). The snapshot
  that follows every (re)subscription repeats past payments: only payments newer than the
  newest already seen for that user are emitted.
* ``pong`` answers our ``{"method":"ping"}``; ``subscriptionResponse``, ``allMids``, spot
  contexts and the plain-text greeting are control frames; ``error`` frames raise ParseError,
  except the harmless "Already subscribed".

REST ``POST /info`` bodies (``parse_rest``):

* ``metaAndAssetCtxs`` (optionally ``metaAndAssetCtxs:<dex>``): per universe entry an
  ``InstrumentSpec`` (maintenance from its margin table via
  ``MaintenanceSchedule.from_hyperliquid_table``, else ``1/(2·maxLeverage)``; funding interval
  1 h; only-isolated when the venue says so), plus ``MarkPrice`` and ``FundingRate`` from the
  matching asset context.
* ``clearinghouseState:<user>`` or ``clearinghouseState:<user>@<dex>``: as the WS push; a
  body older than the state already applied by at most ``REST_RACE_WINDOW`` seconds (a poll
  racing a push) is skipped quietly; an older one always resynchronises (the venue's current
  answer wins over a high-water mark that may be wrong).
* ``spotClearinghouseState:<user>``: the spot state (balances of unified accounts).
* ``userAbstraction:<user>``: the account's mode; a change re-derives the account's snapshots
  (and empties the accounts of the previous mode: a snapshot is the whole account).
* ``metaAndAssetCtxs`` degrades per entry (issue 10.4): a bad universe entry, margin table or
  asset context costs that entry only (counted in ``bad_entries``, problems kept in
  ``entry_problems``); ``meta.collateralToken`` is kept per dex; ``known_symbols`` lists the
  instruments learnt (a held coin missing from it is a listing newer than the last fetch).

Magnitude bounds: prices above ``accounts.MAX_PRICE``, sizes above ``accounts.MAX_SIZE`` and
|funding| above ``MAX_FUNDING`` (per hour) are refused frames.
"""

from __future__ import annotations

from typing import Any

import orjson

from monitor.errors import InputError, ParseError
from monitor.model.events import (
    AccountSnapshot,
    Deleveraged,
    Event,
    FundingPayment,
    FundingRate,
    InstrumentSpec,
    Liquidated,
    MarkPrice,
)
from monitor.model.instruments import Instrument, MaintenanceSchedule
from monitor.venues.hyperliquid import accounts
from monitor.venues.parsing import (
    CONTROL,
    PONG,
    Bad,
    Parsed,
    loads,
    lst,
    new_funding_rate,
    new_mark_price,
    num,
    obj,
    opt_num,
    parse_error,
    pos_num,
    text,
)

VENUE = accounts.VENUE
FUNDING_INTERVAL_HOURS = 1.0
GREETING = "Websocket connection established."
MAX_FUTURE_SKEW = 60.0
"""Seconds a venue ``time`` may run ahead of our receive clock before it is implausible."""
REST_RACE_WINDOW = 30.0
"""Seconds a REST account state may lag the last push and still be a mere race (skipped)."""
RESYNC_AFTER = 3
"""Consecutive refused pushes of one account after which the newest one is taken as truth."""
WALL_CLOCK_AFTER = 1e9
"""A ``ts_recv`` above this (2001-09-09) is a wall-clock time the plausibility bound uses."""
MAX_FUNDING = 1.0
"""Largest |hourly funding rate| accepted (Hyperliquid caps funding at 4 %/h)."""
_MAX_PRICE = accounts.MAX_PRICE
_UNSEEN = object()


def account_name(user: str, dex: str = "") -> str:
    """The account key of ``user`` on the perp dex ``dex`` ("" is the first dex): the
    lower-case address (as the configuration stores it), ``@<dex>`` for a HIP-3 dex."""
    user = user.lower()
    return f"{user}@{dex}" if dex else user


class HyperliquidParser:
    """Stateful only to refuse out-of-order account pushes and repeated funding payments."""

    venue = VENUE

    def __init__(self) -> None:
        self._state_time: dict[str, float] = {}
        self._refused: dict[str, int] = {}
        self._funding_seen: dict[str, tuple[float, frozenset[str]]] = {}
        self._fill_seen: dict[str, tuple[float, frozenset[int]]] = {}
        self._funding_raw: dict[str, Any] = {}
        self._ctx_keys: dict[str, str] = {}
        self._mode: dict[str, str] = {}
        self._dex_states: dict[str, dict[str, dict[str, Any]]] = {}
        self._spot: dict[str, accounts.SpotState] = {}
        self._emitted: dict[str, set[str]] = {}
        self.collateral: dict[str, int] = {}
        """Each perp dex's ``collateralToken`` (from ``metaAndAssetCtxs``)."""
        self.account_events = False
        """Emit ``Deleveraged``, ``Liquidated`` and ``VenueMarginRatio`` (off until the engine
        consumes them: ``Portfolio.apply`` refuses event types it does not know)."""
        self.require_mode = False
        """Hold a user's account states back until its mode is read (the live feed sets it;
        a replay of a recording without ``userAbstraction`` bodies keeps today's behaviour)."""
        self.known_symbols: set[str] = set()
        """Every instrument a ``metaAndAssetCtxs`` listed."""
        self.stale_rest_snapshots = 0
        """REST account states older than one already applied (skipped, not an error)."""
        self.ordering_resyncs = 0
        """Times a high-water mark was replaced (REST resync or repeated refusals)."""
        self.resync_wanted: set[str] = set()
        """Users whose pushes kept being refused: the feed re-fetches them over REST."""
        self.bad_entries = 0
        """Entries of venue-wide lists skipped (one bad asset context costs that entry only)."""
        self.entry_problems: list[str] = []
        """The last problems of skipped entries (at most 20), for the feed to log."""

    def mode(self, user: str) -> str | None:
        """The account abstraction mode last read for ``user`` (None before any)."""
        return self._mode.get(user.lower())

    # -- WebSocket -------------------------------------------------------------------------
    def parse(self, frame: str | bytes, ts_recv: float) -> list[Event]:
        try:
            doc = orjson.loads(frame)
        except orjson.JSONDecodeError:
            return self.parse_frame(frame, ts_recv).events
        if type(doc) is dict and doc.get("channel") == "activeAssetCtx":
            events = self._ctx_fast(doc, ts_recv)
            if events is not None:
                return events
        try:
            return self._doc(doc, ts_recv).events
        except (Bad, InputError) as exc:
            raise parse_error(VENUE, exc, frame) from None

    def parse_frame(self, frame: str | bytes, ts_recv: float) -> Parsed:
        try:
            try:
                doc = orjson.loads(frame)
            except orjson.JSONDecodeError:
                if isinstance(frame, str) and frame.strip() == GREETING:
                    return CONTROL
                loads(frame)  # raises Bad with the decoder's message
                raise
            if type(doc) is dict and doc.get("channel") == "activeAssetCtx":
                events = self._ctx_fast(doc, ts_recv)
                if events is not None:
                    coin = doc["data"]["coin"]
                    key = self._ctx_keys.get(coin)
                    if key is None:
                        key = self._ctx_keys[coin] = f"activeAssetCtx:{coin}"
                    return Parsed(key, events)
            return self._doc(doc, ts_recv)
        except (Bad, InputError) as exc:
            raise parse_error(VENUE, exc, frame) from None

    def _ctx_fast(self, doc: dict[str, Any], ts_recv: float) -> list[Event] | None:
        """The common activeAssetCtx push, or None to take the validating path."""
        data = doc.get("data")
        if type(data) is not dict:
            return None
        coin = data.get("coin")
        ctx = data.get("ctx")
        if type(coin) is not str or not coin or type(ctx) is not dict:
            return None
        m = ctx.get("markPx")
        o = ctx.get("oraclePx")
        if type(m) is not str or type(o) is not str:
            return None
        try:
            mark = float(m)
            oracle = float(o)
        except ValueError:
            return None
        if not (0.0 < mark <= _MAX_PRICE and 0.0 < oracle <= _MAX_PRICE):
            return None
        funding = ctx.get("funding")
        if funding == self._funding_raw.get(coin, _UNSEEN):
            return [new_mark_price(VENUE, coin, mark, oracle, None, ts_recv)]
        if type(funding) is not str:
            return None
        try:
            rate = float(funding)
        except ValueError:
            return None
        if not -MAX_FUNDING <= rate <= MAX_FUNDING:
            return None
        self._funding_raw[coin] = funding
        return [
            new_mark_price(VENUE, coin, mark, oracle, None, ts_recv),
            new_funding_rate(VENUE, coin, rate, FUNDING_INTERVAL_HOURS, None, None, ts_recv),
        ]

    def _doc(self, doc: Any, ts_recv: float) -> Parsed:
        if type(doc) is not dict:
            raise Bad(f"expected an object, got {type(doc).__name__}")
        channel = doc.get("channel")
        if channel == "activeAssetCtx":
            data = obj(doc.get("data"), "data")
            coin = text(data.get("coin"), "data.coin")
            return Parsed(
                f"activeAssetCtx:{coin}", self._ctx_events(coin, data.get("ctx"), ts_recv)
            )
        if channel == "pong":
            return PONG
        if channel == "clearinghouseState":
            data = obj(doc.get("data"), "data")
            user = text(data.get("user"), "data.user").lower()
            dex = data.get("dex") or ""
            if type(dex) is not str:
                raise Bad("data.dex: expected a string")
            account = account_name(user, dex)
            snap = accounts.clearinghouse_to_snapshot(
                doc, f"{VENUE} ws", account=account, ts_recv=ts_recv
            )
            self._check_order(account, snap.ts_event, ts_recv)
            inner = data["clearinghouseState"]
            return Parsed(f"clearinghouseState:{account}", self._account(user, dex, inner, snap))
        if channel == "spotState":
            spot, user_or_none = accounts.spot_state(doc, f"{VENUE} ws")
            if user_or_none is None:
                raise Bad("data.user: expected the user's address")
            return Parsed(f"spotState:{user_or_none}", self._on_spot(user_or_none, spot, ts_recv))
        if channel == "userFills":
            data = obj(doc.get("data"), "data")
            user = text(data.get("user"), "data.user").lower()
            return Parsed(f"userFills:{user}", self._fills(user, data, ts_recv))
        if channel == "userFundings":
            data = obj(doc.get("data"), "data")
            user = text(data.get("user"), "data.user").lower()
            return Parsed(f"userFundings:{user}", self._fundings(user, data, ts_recv))
        if channel == "subscriptionResponse":
            return CONTROL
        if channel == "error":
            message = str(doc.get("data"))
            if "Already subscribed" in message:
                return CONTROL
            raise Bad(f"venue error: {message[:160]}")
        if channel in ("allMids", "activeSpotAssetCtx", "post"):
            return CONTROL
        raise Bad(f"unexpected channel {str(channel)[:40]!r}")

    def _ctx_events(
        self, coin: str, raw: Any, ts_recv: float, *, always_funding: bool = False
    ) -> list[Event]:
        ctx = obj(raw, "ctx")
        mark = pos_num(ctx.get("markPx"), "markPx")
        oracle_raw = ctx.get("oraclePx")
        oracle = None if oracle_raw is None else pos_num(oracle_raw, "oraclePx")
        if mark > _MAX_PRICE or (oracle is not None and oracle > _MAX_PRICE):
            raise Bad(f"{coin}: price beyond {_MAX_PRICE:g}")
        out: list[Event] = [MarkPrice(VENUE, coin, mark, oracle, None, ts_recv)]
        raw_funding = ctx.get("funding")
        funding = opt_num(raw_funding, "funding")
        if funding is not None and not -MAX_FUNDING <= funding <= MAX_FUNDING:
            raise Bad(f"{coin}: |funding| {funding:g} beyond {MAX_FUNDING:g} per hour")
        if funding is not None and (
            always_funding or raw_funding != self._funding_raw.get(coin, _UNSEEN)
        ):
            self._funding_raw[coin] = raw_funding
            out.append(
                FundingRate(VENUE, coin, funding, FUNDING_INTERVAL_HOURS, None, None, ts_recv)
            )
        return out

    def _check_order(self, account: str, ts_event: float | None, ts_recv: float) -> None:
        """Refuse an implausible or out-of-order push (see the module docstring)."""
        if ts_event is None:
            return
        if ts_recv > WALL_CLOCK_AFTER and ts_event > ts_recv + MAX_FUTURE_SKEW:
            raise Bad(
                f"implausible clearinghouseState time for {account}: {ts_event:.3f} is "
                f"{ts_event - ts_recv:.0f}s ahead of the receive clock"
            )
        last = self._state_time.get(account)
        if last is not None and ts_event < last:
            n = self._refused.get(account, 0) + 1
            if n < RESYNC_AFTER:
                self._refused[account] = n
                raise Bad(f"out-of-order clearinghouseState for {account}: {ts_event} < {last}")
            # the stream keeps contradicting the mark: the mark is what is wrong
            self.ordering_resyncs += 1
            self.resync_wanted.add(account.partition("@")[0])
        self._refused.pop(account, None)
        self._state_time[account] = ts_event

    # -- account modes -----------------------------------------------------------------------
    def _account(self, user: str, dex: str, inner: Any, snap: AccountSnapshot) -> list[Event]:
        """A validated per-dex state of ``user``: stored, and the events its mode derives."""
        if isinstance(inner, dict):
            self._dex_states.setdefault(user, {})[dex] = inner
        mode = self._mode.get(user)
        if accounts.is_pooled(mode):
            return self._pools(user, snap.ts_recv)
        if mode is None and self.require_mode:
            return []  # emitted once the mode says what these states mean
        self._emitted.setdefault(user, set()).add(snap.account)
        return [snap]

    def _on_spot(self, user: str, spot: accounts.SpotState, ts_recv: float) -> list[Event]:
        self._spot[user] = spot
        return self._pools(user, ts_recv) if accounts.is_pooled(self._mode.get(user)) else []

    def _pools(self, user: str, ts_recv: float) -> list[Event]:
        """The pooled account's snapshots; nothing until both a spot state and a perp state
        are known (the silence budget reports an account that never completes)."""
        spot = self._spot.get(user)
        states = self._dex_states.get(user)
        mode = self._mode.get(user)
        if spot is None or not states or mode is None:
            return []
        events = accounts.pooled_snapshots(
            user, mode, states, spot, self.collateral, source=VENUE, ts_recv=ts_recv
        )
        names = {e.account for e in events if isinstance(e, AccountSnapshot)}
        if not self.account_events:
            events = [e for e in events if isinstance(e, AccountSnapshot)]
        return [*self._empty(user, names, ts_recv), *events]

    def _empty(self, user: str, keep: set[str], ts_recv: float) -> list[Event]:
        """Empty snapshots for the accounts of ``user`` emitted before and no longer derived
        (a mode change), so their old positions do not linger; ``keep`` becomes the set."""
        before = self._emitted.get(user, set())
        self._emitted[user] = set(keep)
        return [
            AccountSnapshot(VENUE, name, 0.0, (), None, ts_recv) for name in sorted(before - keep)
        ]

    def _on_mode(self, user: str, mode: str, ts_recv: float) -> list[Event]:
        old = self._mode.get(user)
        self._mode[user] = mode
        if old is not None and accounts.is_pooled(old) == accounts.is_pooled(mode):
            return []
        if old is None and not self.require_mode and not accounts.is_pooled(mode):
            return []  # its states were already emitted as per-dex accounts
        if accounts.is_pooled(mode):
            return self._pools(user, ts_recv)
        # back to per-dex pools: re-derive them from the stored states
        out: list[Event] = []
        for dex, inner in self._dex_states.get(user, {}).items():
            out.append(
                accounts.clearinghouse_to_snapshot(
                    inner, f"{VENUE} stored", account=account_name(user, dex), ts_recv=ts_recv
                )
            )
        names = {e.account for e in out if isinstance(e, AccountSnapshot)}
        return [*self._empty(user, names, ts_recv), *out]

    # -- fills ---------------------------------------------------------------------------------
    def _fills(self, user: str, data: dict[str, Any], ts_recv: float) -> list[Event]:
        entries = lst(data.get("fills"), "data.fills")
        parsed: list[tuple[float, int, Event | None]] = []
        for i, raw in enumerate(entries):
            f = obj(raw, f"fills[{i}]")
            t = num(f.get("time"), f"fills[{i}].time")
            tid = f.get("tid")
            if type(tid) is not int:
                raise Bad(f"fills[{i}].tid: expected an integer")
            parsed.append((t, tid, self._fill_event(user, f, i, t, ts_recv)))
        seen = self._fill_seen.get(user)
        newest = max((t for t, _, _ in parsed), default=None)
        if seen is None:
            # the first message repeats history: it is not news
            if newest is not None:
                at = frozenset(tid for t, tid, _ in parsed if t == newest)
                self._fill_seen[user] = (newest, at)
            else:
                self._fill_seen[user] = (-1.0, frozenset())
            if data.get("isSnapshot") is True:
                return []
            seen = (-1.0, frozenset())
        last_t, tids = seen
        out: list[Event] = []
        new_last, new_tids = last_t, set(tids)
        for t, tid, event in sorted(parsed, key=lambda p: (p[0], p[1])):
            if t < last_t or (t == last_t and tid in tids):
                continue
            if event is not None:
                out.append(event)
            if t > new_last:
                new_last, new_tids = t, {tid}
            elif t == new_last:
                new_tids.add(tid)
        self._fill_seen[user] = (new_last, frozenset(new_tids))
        return out if self.account_events else []

    def _fill_event(
        self, user: str, f: dict[str, Any], i: int, t: float, ts_recv: float
    ) -> Event | None:
        coin = text(f.get("coin"), f"fills[{i}].coin")
        direction = f.get("dir")
        liq = f.get("liquidation")
        liquidated_user = liq.get("liquidatedUser") if type(liq) is dict else None
        adl = direction == "Auto-Deleveraging"
        own_liquidation = (
            isinstance(liquidated_user, str) and liquidated_user.lower() == user
        ) or (isinstance(direction, str) and direction.startswith("Liquidated"))
        if not (adl or own_liquidation) or coin.startswith("@") or "/" in coin:
            return None  # an ordinary fill, the liquidator's side, or a spot fill
        sz = pos_num(f.get("sz"), f"fills[{i}].sz")
        px = pos_num(f.get("px"), f"fills[{i}].px")
        if sz > accounts.MAX_SIZE or px > _MAX_PRICE:
            raise Bad(f"fills[{i}]: size or price beyond any venue's")
        side = f.get("side")
        if side not in ("B", "A"):
            raise Bad(f"fills[{i}].side: expected 'B' or 'A'")
        size = sz if side == "B" else -sz
        dex = coin.split(":", 1)[0] if ":" in coin else ""
        if accounts.is_pooled(self._mode.get(user)):
            token = self.collateral.get(dex, accounts.USDC_TOKEN)
            account = accounts.pool_account(user, token, self._spot.get(user))
        else:
            account = account_name(user, dex)
        cls = Deleveraged if adl else Liquidated
        return cls(VENUE, account, coin, size, px, t / 1000.0, ts_recv)

    def _fundings(self, user: str, data: dict[str, Any], ts_recv: float) -> list[Event]:
        entries = lst(data.get("fundings"), "data.fundings")
        parsed: list[tuple[float, FundingPayment]] = []
        for i, raw in enumerate(entries):
            e = obj(raw, f"fundings[{i}]")
            t = num(e.get("time"), f"fundings[{i}].time")
            coin = text(e.get("coin"), f"fundings[{i}].coin")
            amount = num(e.get("usdc"), f"fundings[{i}].usdc")
            rate = num(e.get("fundingRate"), f"fundings[{i}].fundingRate")
            parsed.append((t, FundingPayment(VENUE, user, coin, amount, rate, t / 1000.0, ts_recv)))
        last_t, coins_at_last = self._funding_seen.get(user, (-1.0, frozenset()))
        out: list[Event] = []
        new_last, new_coins = last_t, set(coins_at_last)
        for t, payment in sorted(parsed, key=lambda p: p[0]):
            if t < last_t or (t == last_t and payment.symbol in coins_at_last):
                continue  # already emitted (the snapshot repeats history)
            out.append(payment)
            if t > new_last:
                new_last, new_coins = t, {payment.symbol}
            elif t == new_last:
                new_coins.add(payment.symbol)
        self._funding_seen[user] = (new_last, frozenset(new_coins))
        return out

    # -- REST ------------------------------------------------------------------------------
    def parse_rest(self, name: str, body: str | bytes, ts_recv: float) -> list[Event]:
        try:
            kind, _, arg = name.partition(":")
            if kind == "metaAndAssetCtxs":
                return self._meta(loads(body), arg, ts_recv)
            if kind == "clearinghouseState":
                user, _, dex = arg.partition("@")
                if not user:
                    raise Bad("clearinghouseState needs the user in the channel name")
                doc = loads(body)
                user = user.lower()
                account = account_name(user, dex)
                snap = accounts.clearinghouse_to_snapshot(
                    obj(doc, "body"), f"{VENUE} rest", account=account, ts_recv=ts_recv
                )
                last = self._state_time.get(account)
                if snap.ts_event is not None and last is not None and snap.ts_event < last:
                    if last - snap.ts_event <= REST_RACE_WINDOW:
                        self.stale_rest_snapshots += 1
                        return []  # a poll answered before the push we already have: expected
                    # far older than the mark: the mark is what is wrong; the venue's answer wins
                    self.ordering_resyncs += 1
                    del self._state_time[account]
                self._check_order(account, snap.ts_event, ts_recv)
                return self._account(user, dex, doc, snap)
            if kind == "spotClearinghouseState":
                if not arg:
                    raise Bad("spotClearinghouseState needs the user in the channel name")
                spot, _ = accounts.spot_state(loads(body), f"{VENUE} rest")
                return self._on_spot(arg.lower(), spot, ts_recv)
            if kind == "userAbstraction":
                if not arg:
                    raise Bad("userAbstraction needs the user in the channel name")
                mode = accounts.abstraction_mode(loads(body), f"{VENUE} rest")
                return self._on_mode(arg.lower(), mode, ts_recv)
            raise Bad(f"unknown REST body {name[:40]!r}")
        except (Bad, InputError) as exc:
            raise parse_error(VENUE, exc, body) from None

    def _skip(self, problem: str) -> None:
        self.bad_entries += 1
        self.entry_problems.append(problem[:160])
        del self.entry_problems[:-20]

    def _meta(self, doc: Any, dex: str, ts_recv: float) -> list[Event]:
        pair = lst(doc, "metaAndAssetCtxs")
        if len(pair) != 2:
            raise Bad("metaAndAssetCtxs: expected [meta, ctxs]")
        meta = obj(pair[0], "meta")
        ctxs = lst(pair[1], "ctxs")
        universe = lst(meta.get("universe"), "meta.universe")
        if len(ctxs) != len(universe):
            # entries pair up by position: past the shorter list, nothing is known
            self._skip(f"{len(universe)} universe entries but {len(ctxs)} asset contexts")
        token = meta.get("collateralToken")
        if type(token) is int and token >= 0:
            self.collateral[dex] = token
        tables: dict[int, MaintenanceSchedule] = {}
        raw_tables = meta.get("marginTables") or []
        for j, raw in enumerate(raw_tables if type(raw_tables) is list else []):
            try:
                entry = lst(raw, f"marginTables[{j}]")
                if len(entry) != 2:
                    raise Bad(f"marginTables[{j}]: expected [id, table]")
                tiers = lst(
                    obj(entry[1], f"marginTables[{j}][1]").get("marginTiers"), "marginTiers"
                )
                pairs = [
                    (
                        num(obj(t, "marginTier").get("lowerBound"), "lowerBound"),
                        pos_num(t.get("maxLeverage"), "maxLeverage"),
                    )
                    for t in tiers
                ]
                try:
                    schedule = MaintenanceSchedule.from_hyperliquid_table(pairs)
                except ValueError as exc:
                    raise Bad(f"marginTables[{j}]: {exc}") from None
                tables[int(num(entry[0], "marginTable id"))] = schedule
            except Bad as exc:
                self._skip(str(exc))  # its assets fall back to 1/(2·maxLeverage)
        out: list[Event] = []
        for i, raw in enumerate(universe[: len(ctxs)]):
            try:
                out.extend(
                    self._universe_entry(i, raw, ctxs[i], dex=dex, tables=tables, ts_recv=ts_recv)
                )
            except Bad as exc:
                self._skip(f"universe[{i}]: {exc}")
        return out

    def _universe_entry(
        self,
        i: int,
        raw: Any,
        ctx: Any,
        *,
        dex: str,
        tables: dict[int, MaintenanceSchedule],
        ts_recv: float,
    ) -> list[Event]:
        u = obj(raw, f"universe[{i}]")
        name = text(u.get("name"), f"universe[{i}].name")
        if dex and ":" not in name:
            name = f"{dex}:{name}"
        max_lev = pos_num(u.get("maxLeverage"), f"universe[{i}].maxLeverage")
        table_id = u.get("marginTableId")
        schedule = tables.get(table_id) if type(table_id) is int else None
        if schedule is None:
            lo, hi = accounts.LEVERAGE_RANGE
            if not lo <= max_lev <= hi:
                raise Bad(f"universe[{i}].maxLeverage: {max_lev:g} outside [{lo:g}, {hi:g}]")
            schedule = MaintenanceSchedule.from_max_leverage(max_lev)
        only_isolated = bool(u.get("onlyIsolated")) or u.get("marginMode") in (
            "strictIsolated",
            "noCross",
        )
        inst = Instrument(
            venue=VENUE,
            symbol=name,
            maintenance=schedule,
            funding_interval_hours=FUNDING_INTERVAL_HOURS,
            only_isolated=only_isolated,
        )
        prices = self._ctx_events(name, ctx, ts_recv, always_funding=True)
        self.known_symbols.add(name)
        return [InstrumentSpec(inst, None, ts_recv), *prices]


def parse(frame: str | bytes, ts_recv: float) -> list[Event]:
    """Parse one frame with a fresh parser (no out-of-order memory); for one-off use."""
    return HyperliquidParser().parse(frame, ts_recv)


__all__ = ["VENUE", "HyperliquidParser", "ParseError", "account_name", "parse"]
