"""The venue table (pure data): one name per venue, written the same everywhere.

Each venue has exactly one **canonical name**: the name users write in ``[venues.<name>]`` and
in account ids (``hyperliquid:0x…``, ``dydx:ADDRESS/N``, ``binanceusdm:main``), and the name
events, alerts, ``status``, ``mute``, ``history`` and rule overrides carry. Older spellings
(``dydx_v4``, ``binance_usdm``: the margin rule-set names) are accepted as **aliases** on input,
with a note, and never written out.

=============  ===============  ==============================  ===========================
name           rule set          account id                      feed
=============  ===============  ==============================  ===========================
hyperliquid    hyperliquid       ``hyperliquid:0x`` + 40 hex     native websockets
dydx           dydx_v4           ``dydx:dydx1…/N``               native websockets
binanceusdm    binance_usdm      ``binanceusdm:NAME`` by API key  native websockets
bybit          bybit             ``bybit:NAME`` by API key        native websockets
okx            okx               ``okx:NAME`` by API key          native websockets
generic        generic           manual, fixed prices            none
=============  ===============  ==============================  ===========================

Any other ccxt exchange id is a venue of its own name priced by ccxt.pro with the ``generic``
rule set (:func:`spec` builds its entry on demand). The I/O half of each entry (parser and feed
builder, by the same name) is :mod:`monitor.venues.registry`; the margin rules are
:mod:`monitor.margin.registry`.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Final


@dataclass(frozen=True, slots=True)
class VenueSpec:
    """One row of the venue table.

    ``name``: the canonical name; ``rule_set``: the margin rule set of its accounts
    (:mod:`monitor.margin.registry`); ``aliases``: other accepted spellings; ``native``: a feed
    of our own (else ccxt.pro, or none for ``generic``); ``account_id``: the grammar of an
    address account id, for messages (None: accounts of this venue are manual); ``ws_url``/
    ``rest_url``: the public endpoints' defaults.
    """

    name: str
    rule_set: str
    aliases: tuple[str, ...] = ()
    native: bool = False
    account_id: str | None = None
    ws_url: str | None = None
    rest_url: str | None = None
    ccxt: bool = False


HYPERLIQUID: Final = "hyperliquid"
DYDX: Final = "dydx"
BINANCE_USDM: Final = "binanceusdm"
BYBIT: Final = "bybit"
OKX: Final = "okx"
GENERIC: Final = "generic"

VENUES: Final = MappingProxyType(
    {
        HYPERLIQUID: VenueSpec(
            HYPERLIQUID,
            "hyperliquid",
            native=True,
            account_id='"hyperliquid:0x" + 40 hex digits',
            ws_url="wss://api.hyperliquid.xyz/ws",
            rest_url="https://api.hyperliquid.xyz",
        ),
        DYDX: VenueSpec(
            DYDX,
            "dydx_v4",
            aliases=("dydx_v4", "dydxv4"),
            native=True,
            account_id='"dydx:dydx1…/N" (N the subaccount number)',
            ws_url="wss://indexer.dydx.trade/v4/ws",
            rest_url="https://indexer.dydx.trade/v4",
        ),
        BINANCE_USDM: VenueSpec(
            BINANCE_USDM,
            "binance_usdm",
            aliases=("binance_usdm", "binance-usdm"),
            native=True,
            account_id='"binanceusdm:NAME" with a read-only API key, or a manual account',
            ws_url="wss://fstream.binance.com/market/stream",
            rest_url="https://fapi.binance.com",
            ccxt=True,
        ),
        BYBIT: VenueSpec(
            BYBIT,
            "bybit",
            native=True,
            account_id='"bybit:NAME" with a read-only API key, or a manual account',
            ws_url="wss://stream.bybit.com/v5/public/linear",
            rest_url="https://api.bybit.com",
            ccxt=True,
        ),
        OKX: VenueSpec(
            OKX,
            "okx",
            native=True,
            account_id='"okx:NAME" with a read-only API key, or a manual account',
            ws_url="wss://ws.okx.com:8443/ws/v5/public",
            rest_url="https://www.okx.com",
            ccxt=True,
        ),
        GENERIC: VenueSpec(GENERIC, "generic"),
    }
)

_ALIASES: Final = MappingProxyType(
    {alias: spec.name for spec in VENUES.values() for alias in spec.aliases}
)


class UnknownVenueError(ValueError):
    """A name that is neither a venue of the table nor one of its aliases."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name

    def __str__(self) -> str:
        return f"unknown venue {self.name!r} (known: {', '.join(VENUES)})"


def canonical(name: str) -> str:
    """The canonical name of ``name`` (itself, or the venue it is an alias of); any other
    name is returned unchanged, lower-cased (a ccxt id names itself)."""
    low = name.strip().lower()
    return _ALIASES.get(low, low)


def is_alias(name: str) -> bool:
    """True when ``name`` is an accepted old spelling rather than the canonical name."""
    return name.strip().lower() in _ALIASES


def spec(name: str) -> VenueSpec:
    """The table row of ``name`` (canonical or alias); any other name is taken as a ccxt
    exchange id priced with the generic rule set."""
    canon = canonical(name)
    row = VENUES.get(canon)
    return row if row is not None else VenueSpec(canon, GENERIC, ccxt=True)


def rule_set_of(venue: str) -> str:
    """The margin rule set that prices accounts of ``venue`` (``generic`` for an unknown
    ccxt id)."""
    return spec(venue).rule_set
