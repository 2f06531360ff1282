"""Hyperliquid wire frames → normalized events (pure; feeds.md §1).

WebSocket channels:

* ``activeAssetCtx`` → ``MarkPrice(mark=markPx, oracle=oraclePx)``, and
  ``FundingRate(rate=funding, interval_hours=1)`` (the hourly rate; positive = longs pay) when
  the coin's funding differs from the last one this parser emitted (every push repeats it).
  The push has no timestamp: ``ts_event`` stays None, ``ts_recv`` is the receive time.
* ``clearinghouseState`` → ``AccountSnapshot`` through :mod:`monitor.venues.hyperliquid.accounts`.
  The account is the lower-case user address, suffixed ``@<dex>`` for a HIP-3 dex (each dex
  is its own clearinghouse). A push older (``time``) than the last one of that account is refused.
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
  body older than the state already applied (a poll racing a push) is skipped quietly.
"""

from __future__ import annotations

from typing import Any

import orjson

from monitor.errors import InputError, ParseError
from monitor.model.events import (
    Event,
    FundingPayment,
    FundingRate,
    InstrumentSpec,
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

VENUE = "hyperliquid"
FUNDING_INTERVAL_HOURS = 1.0
GREETING = "Websocket connection established."
_INF = float("inf")
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
        self._funding_seen: dict[str, tuple[float, frozenset[str]]] = {}
        self._funding_raw: dict[str, Any] = {}
        self._ctx_keys: dict[str, str] = {}
        self.stale_rest_snapshots = 0
        """REST account states older than one already applied (skipped, not an error)."""

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
        if not (0.0 < mark < _INF and 0.0 < oracle < _INF):
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
        if not -_INF < rate < _INF:
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
            self._check_order(account, snap.ts_event)
            return Parsed(f"clearinghouseState:{account}", [snap])
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
        out: list[Event] = [MarkPrice(VENUE, coin, mark, oracle, None, ts_recv)]
        raw_funding = ctx.get("funding")
        funding = opt_num(raw_funding, "funding")
        if funding is not None and (
            always_funding or raw_funding != self._funding_raw.get(coin, _UNSEEN)
        ):
            self._funding_raw[coin] = raw_funding
            out.append(
                FundingRate(VENUE, coin, funding, FUNDING_INTERVAL_HOURS, None, None, ts_recv)
            )
        return out

    def _check_order(self, account: str, ts_event: float | None) -> None:
        if ts_event is None:
            return
        last = self._state_time.get(account)
        if last is not None and ts_event < last:
            raise Bad(f"out-of-order clearinghouseState for {account}: {ts_event} < {last}")
        self._state_time[account] = ts_event

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
                account = account_name(user, dex)
                snap = accounts.clearinghouse_to_snapshot(
                    obj(doc, "body"), f"{VENUE} rest", account=account, ts_recv=ts_recv
                )
                last = self._state_time.get(account)
                if snap.ts_event is not None and last is not None and snap.ts_event < last:
                    self.stale_rest_snapshots += 1
                    return []  # a poll answered before the push we already have: expected
                self._check_order(account, snap.ts_event)
                return [snap]
            raise Bad(f"unknown REST body {name[:40]!r}")
        except (Bad, InputError) as exc:
            raise parse_error(VENUE, exc, body) from None

    def _meta(self, doc: Any, dex: str, ts_recv: float) -> list[Event]:
        pair = lst(doc, "metaAndAssetCtxs")
        if len(pair) != 2:
            raise Bad("metaAndAssetCtxs: expected [meta, ctxs]")
        meta = obj(pair[0], "meta")
        ctxs = lst(pair[1], "ctxs")
        universe = lst(meta.get("universe"), "meta.universe")
        if len(ctxs) != len(universe):
            raise Bad(f"{len(universe)} universe entries but {len(ctxs)} asset contexts")
        tables: dict[int, MaintenanceSchedule] = {}
        for j, raw in enumerate(lst(meta.get("marginTables") or [], "meta.marginTables")):
            entry = lst(raw, f"marginTables[{j}]")
            if len(entry) != 2:
                raise Bad(f"marginTables[{j}]: expected [id, table]")
            tiers = lst(obj(entry[1], f"marginTables[{j}][1]").get("marginTiers"), "marginTiers")
            pairs = [
                (
                    num(obj(t, "marginTier").get("lowerBound"), "lowerBound"),
                    pos_num(t.get("maxLeverage"), "maxLeverage"),
                )
                for t in tiers
            ]
            try:
                tables[int(num(entry[0], "marginTable id"))] = (
                    MaintenanceSchedule.from_hyperliquid_table(pairs)
                )
            except ValueError as exc:
                raise Bad(f"marginTables[{j}]: {exc}") from None
        out: list[Event] = []
        for i, raw in enumerate(universe):
            u = obj(raw, f"universe[{i}]")
            name = text(u.get("name"), f"universe[{i}].name")
            if dex and ":" not in name:
                name = f"{dex}:{name}"
            max_lev = pos_num(u.get("maxLeverage"), f"universe[{i}].maxLeverage")
            table_id = u.get("marginTableId")
            schedule = tables.get(table_id) if type(table_id) is int else None
            if schedule is None:
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
            out.append(InstrumentSpec(inst, None, ts_recv))
            out.extend(self._ctx_events(name, ctxs[i], ts_recv, always_funding=True))
        return out


def parse(frame: str | bytes, ts_recv: float) -> list[Event]:
    """Parse one frame with a fresh parser (no out-of-order memory); for one-off use."""
    return HyperliquidParser().parse(frame, ts_recv)


__all__ = ["VENUE", "HyperliquidParser", "ParseError", "account_name", "parse"]
