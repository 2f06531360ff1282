"""Normalized events: what every venue parser emits and ``Portfolio.apply`` consumes.

Times are data, never read from a clock here: ``ts_event`` is the venue's timestamp when the
frame carries one (seconds since the Unix epoch, UTC), ``ts_recv`` the receive time stamped by
the I/O shell. Prices are in the quote currency; funding ``rate`` covers
``interval_hours`` hours (Hyperliquid and dYdX quote hourly rates), positive = longs pay.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import msgspec

from monitor.model.instruments import Instrument
from monitor.model.positions import Position


class MarkPrice(msgspec.Struct, frozen=True, gc=False):
    """A new price for one instrument. ``mark`` is the venue's mark (dYdX has none: its
    feed puts the oracle price in both); ``oracle`` is the index/oracle price when known.

    The two per-tick events are frozen ``msgspec.Struct``s rather than dataclasses: they are
    built once per frame on the hot path, and a Struct builds in about 0.05 µs where a frozen
    slotted dataclass takes 0.6 µs (benchmarks/README.md, "Parsers")."""

    venue: str
    symbol: str
    mark: float
    oracle: float | None = None
    ts_event: float | None = None
    ts_recv: float = 0.0


class FundingRate(msgspec.Struct, frozen=True, gc=False):
    """A funding rate: ``rate`` per ``interval_hours``, positive = longs pay."""

    venue: str
    symbol: str
    rate: float
    interval_hours: float
    next_funding_ts: float | None = None
    ts_event: float | None = None
    ts_recv: float = 0.0


@dataclass(frozen=True, slots=True)
class AccountSnapshot:
    """The whole state of one account: it replaces whatever was known before.

    ``cross_collateral`` excludes unrealized PnL (contracts.md §2). ``venue_*`` are the venue's
    own figures for the cross pool where the document carries them.
    """

    venue: str
    account: str
    cross_collateral: float
    positions: tuple[Position, ...]
    ts_event: float | None = None
    ts_recv: float = 0.0
    venue_equity: float | None = None
    venue_free_collateral: float | None = None
    venue_maintenance: float | None = None


@dataclass(frozen=True, slots=True)
class PositionUpdate:
    """One position changed: it replaces the account's position in ``position.symbol``
    (a size of 0 closes it). ``cross_collateral`` (excl. uPnL) or ``cross_cash`` (raw quote
    balance), when given, is the cross pool's new balance; ``liquidated`` is set when the
    venue says the position was closed by liquidation."""

    venue: str
    account: str
    position: Position
    cross_collateral: float | None = None
    cross_cash: float | None = None
    liquidated: bool = False
    ts_event: float | None = None
    ts_recv: float = 0.0


@dataclass(frozen=True, slots=True)
class BalanceUpdate:
    """The cross pool's balance changed, positions did not. Give one of
    ``cross_collateral`` (excluding uPnL, contracts.md §2) or ``cross_cash``, the raw quote
    balance such that equity = cash + Σ s·price (Hyperliquid ``totalRawUsd``, dYdX's signed
    USDC asset position)."""

    venue: str
    account: str
    cross_collateral: float | None = None
    cross_cash: float | None = None
    ts_event: float | None = None
    ts_recv: float = 0.0


@dataclass(frozen=True, slots=True)
class InstrumentSpec:
    instrument: Instrument
    ts_event: float | None = None
    ts_recv: float = 0.0


@dataclass(frozen=True, slots=True)
class FundingPayment:
    """Funding actually paid (negative ``amount``) or received, as the venue booked it."""

    venue: str
    account: str
    symbol: str
    amount: float
    rate: float
    ts_event: float | None = None
    ts_recv: float = 0.0


class FeedState(StrEnum):
    CONNECTING = "connecting"
    LIVE = "live"
    STALE = "stale"
    RECOVERED = "recovered"
    DOWN = "down"


@dataclass(frozen=True, slots=True)
class FeedStatus:
    """Health of one subscription (``channel``) of a venue's feed."""

    venue: str
    channel: str
    state: FeedState
    detail: str = ""
    ts_event: float | None = None
    ts_recv: float = 0.0


@dataclass(frozen=True, slots=True)
class Deleveraged:
    """The venue auto-deleveraged (ADL) part or all of ``account``'s position in ``symbol``:
    ``size`` is the signed change of the position (base units; positive = bought, i.e. a
    short was reduced; negative = sold, a long was reduced), ``price`` the fill price (quote
    per base). Times as everywhere: ``ts_event`` the venue's, ``ts_recv`` ours (seconds)."""

    venue: str
    account: str
    symbol: str
    size: float
    price: float
    ts_event: float | None = None
    ts_recv: float = 0.0


@dataclass(frozen=True, slots=True)
class Liquidated:
    """The venue liquidated part or all of ``account``'s position in ``symbol`` (a fill the
    venue marks as the liquidation of this account). ``size``/``price`` as in
    :class:`Deleveraged`: the signed change of the position and the fill price."""

    venue: str
    account: str
    symbol: str
    size: float
    price: float
    ts_event: float | None = None
    ts_recv: float = 0.0


@dataclass(frozen=True, slots=True)
class VenueMarginRatio:
    """A margin ratio the venue computes and reports itself, carried as the venue's figure
    where the monitor cannot reproduce it (Hyperliquid portfolio margin: ``portfolioMarginRatio``
    of ``spotClearinghouseState``). ``ratio`` is dimensionless, higher = closer to liquidation;
    the account is liquidatable once ``ratio`` exceeds ``liquidation_at`` (Hyperliquid: 0.95).
    ``source`` names the venue field the figure came from."""

    venue: str
    account: str
    ratio: float
    liquidation_at: float
    source: str
    ts_event: float | None = None
    ts_recv: float = 0.0


Event = (
    MarkPrice
    | FundingRate
    | AccountSnapshot
    | PositionUpdate
    | BalanceUpdate
    | InstrumentSpec
    | FundingPayment
    | FeedStatus
    | Deleveraged
    | Liquidated
    | VenueMarginRatio
)
