"""Identities (pure values): venue, account, scope, position, feed and alert subjects.

Each identity is a frozen value validated at construction, with ONE formatter (``str()``)
and ONE parser (:func:`parse_subject`, or the ``parse`` class methods). The text forms are
the ones alerts, the store and the command line use::

    account    VENUE:ACCOUNT                     hyperliquid:0x1111…, dydx:dydx1…/0
    scope      VENUE:ACCOUNT/SCOPE               binanceusdm:main/isolated:ETHUSDT
    position   VENUE:ACCOUNT/SCOPE#SYMBOL        hyperliquid:0x1111…/cross#xyz:TSLA
    feed       feed:VENUE  or  feed:VENUE/CHANNEL
    monitor    monitor

The formatter is **injective**: two different identities never print the same text, whatever
characters a venue (HIP-3 coins and dexes are named by anyone) or a user (account names) put
in a name. Inside the ACCOUNT and SCOPE parts, ``%``, ``#`` and control characters (C0, DEL,
C1) are percent-encoded (``%25``, ``%23``, ``%0A``…); SCOPE also encodes ``/``. ACCOUNT keeps
``/`` as written (dYdX subaccounts are ``ADDRESS/N``) except a ``/`` followed by a segment
that reads as a scope (``cross``, ``venue-ratio``, ``isolated:…``), encoded ``%2F`` so that
an account subject never reads as a scope subject. ``:`` and ``@`` are never separators
inside a part (the venue ends at the first ``:``; Hyperliquid's ``0x…@dex`` accounts and
``dex:COIN`` symbols keep theirs). SYMBOL and CHANNEL are the last part of their form and
are written verbatim. Consequently ``text.split("#", 1)[0]`` is always a position's scope,
``text.partition(":")[0]`` its venue, and ``rpartition("/")`` splits a scope key's account
from its scope.

A venue name is ``[a-z0-9][a-z0-9_.-]*`` and neither ``feed`` nor ``monitor``; an empty
account or symbol is refused. A name that breaks these rules raises :class:`IdError` (a
``ValueError``) with a message that says why.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Final

from monitor.model.venues import canonical, is_alias

CROSS: Final = "cross"
VENUE_RATIO: Final = "venue-ratio"
ISOLATED_PREFIX: Final = "isolated:"
#: scope names other than ``isolated:SYMBOL``
SCOPE_WORDS: Final = frozenset({CROSS, VENUE_RATIO})
FEED: Final = "feed"
MONITOR: Final = "monitor"

_VENUE = re.compile(r"[a-z0-9][a-z0-9_.-]*\Z")
_CONTROL = "\x00-\x1f\x7f-\x9f"
_ACCOUNT_SPECIAL = re.compile(f"[%#{_CONTROL}]")
_SCOPE_SPECIAL = re.compile(f"[%#/{_CONTROL}]")
_ESCAPE = re.compile(r"%([0-9A-F]{2})")
_HL_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}\Z")


class IdError(ValueError):
    """A name that cannot be an identity; the message names the part and the reason."""


def _pct(m: re.Match[str]) -> str:
    return f"%{ord(m.group(0)):02X}"


def near_scope_word(text: str) -> str | None:
    """The scope ``text`` (a segment that is not a scope) is a typo of, or None: a scope word in
    other capitals, at least 0.6 alike to one (``crosss``, ``venue_ratio``), or
    ``isolated:SYMBOL`` misspelt (``isolate:ETH``, ``iso:ETH``). For typed names only: the
    formatter never writes such a segment unescaped."""
    head, colon, symbol = text.partition(":")
    low = head.casefold()
    if colon:
        near = difflib.get_close_matches(low, ["isolated"], n=1, cutoff=0.6)
        ok = bool(near) or (len(low) >= 3 and "isolated".startswith(low))
        return f"{ISOLATED_PREFIX}{symbol or 'SYMBOL'}" if ok else None
    found = difflib.get_close_matches(low, [CROSS, VENUE_RATIO, "isolated"], n=1, cutoff=0.6)
    if not found:
        return None
    return "isolated:SYMBOL" if found[0] == "isolated" else found[0]


def is_scope_word(text: str) -> bool:
    """``text`` names a scope: ``cross``, ``venue-ratio`` or ``isolated:…``."""
    return text in SCOPE_WORDS or text.startswith(ISOLATED_PREFIX)


#: memo of encoded parts (names are few: accounts of the configuration, instruments); cleared
#: when it grows past :data:`_MEMO_MAX` so hostile names cannot grow it without bound
_ACCOUNT_MEMO: dict[str, str] = {}
_SCOPE_MEMO: dict[str, str] = {}
_MEMO_MAX = 65536


def encode_account(account: str) -> str:
    """The ACCOUNT part of the text forms (see the module docstring)."""
    text = _ACCOUNT_MEMO.get(account)
    if text is None:
        text = _encode_account(account)
        if len(_ACCOUNT_MEMO) >= _MEMO_MAX:
            _ACCOUNT_MEMO.clear()
        _ACCOUNT_MEMO[account] = text
    return text


def _encode_account(account: str) -> str:
    text = _ACCOUNT_SPECIAL.sub(_pct, account)
    if "/" not in text:
        return text
    head, *segments = text.split("/")
    out = [head]
    for seg in segments:
        out.append(("%2F" if is_scope_word(_decode(seg, "account")) else "/") + seg)
    return "".join(out)


def encode_scope(scope: str) -> str:
    """The SCOPE part of the text forms (``/`` encoded too)."""
    text = _SCOPE_MEMO.get(scope)
    if text is None:
        text = _SCOPE_SPECIAL.sub(_pct, scope)
        if len(_SCOPE_MEMO) >= _MEMO_MAX:
            _SCOPE_MEMO.clear()
        _SCOPE_MEMO[scope] = text
    return text


def _decode(text: str, what: str) -> str:
    """Strict percent-decoding: ``%`` must start ``%XX`` (upper-case hex)."""
    if "%" not in text:
        return text
    if text.count("%") != len(_ESCAPE.findall(text)):
        raise IdError(f"{what} {text!r}: '%' must start an escape like %25 (for '%' itself)")
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)


_GOOD_VENUES: set[str] = set()


def check_venue(venue: str) -> str:
    """``venue`` if it is a valid venue name, else IdError."""
    if venue in _GOOD_VENUES:
        return venue
    if not isinstance(venue, str) or not _VENUE.match(venue):
        raise IdError(
            f"venue {venue!r}: a venue name is lower-case letters, digits, '_', '-' or '.'"
        )
    if venue in (FEED, MONITOR):
        raise IdError(f"venue {venue!r}: reserved word, not a venue")
    if len(_GOOD_VENUES) < 1024:
        _GOOD_VENUES.add(venue)
    return venue


def _check_account(account: str) -> None:
    if not isinstance(account, str) or not account:
        raise IdError(f"account {account!r}: an account name cannot be empty")


def _check_scope(scope: str) -> None:
    if scope == CROSS:
        return
    if not isinstance(scope, str) or not is_scope_word(scope) or scope == ISOLATED_PREFIX:
        raise IdError(
            f"scope {scope!r}: a scope is {CROSS!r}, {VENUE_RATIO!r} or 'isolated:SYMBOL'"
        )


@dataclass(frozen=True, slots=True, order=True)
class AccountKey:
    """One account of one venue: ``VENUE:ACCOUNT``."""

    venue: str
    account: str
    _text: str = field(default="", init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_venue(self.venue)
        _check_account(self.account)
        object.__setattr__(self, "_text", f"{self.venue}:{encode_account(self.account)}")

    def __str__(self) -> str:
        return self._text

    @classmethod
    def _checked(cls, venue: str, account: str, text: str) -> AccountKey:
        """The key of a venue and account already checked (a :class:`ScopeKey`'s), with its
        text form: no check, no second copy of the text."""
        key = object.__new__(cls)
        object.__setattr__(key, "venue", venue)
        object.__setattr__(key, "account", account)
        object.__setattr__(key, "_text", text)
        return key


@dataclass(frozen=True, slots=True, order=True)
class ScopeKey:
    """One margin pool: an account's cross pool, one isolated position (``isolated:SYMBOL``)
    or the venue's own account-wide ratio (``venue-ratio``): ``VENUE:ACCOUNT/SCOPE``."""

    venue: str
    account: str
    scope: str
    _text: str = field(default="", init=False, repr=False, compare=False)
    _account: str = field(default="", init=False, repr=False, compare=False)
    _account_key: AccountKey | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_venue(self.venue)
        _check_account(self.account)
        _check_scope(self.scope)
        # the text forms, once: keys are printed far more often than they are made
        account = f"{self.venue}:{encode_account(self.account)}"
        object.__setattr__(self, "_account", account)
        object.__setattr__(self, "_text", f"{account}/{encode_scope(self.scope)}")

    @classmethod
    def of(cls, account: AccountKey, scope: str) -> ScopeKey:
        """The key of ``account``'s pool ``scope``, sharing ``account`` and its text form
        (what a book of 10⁵ scopes keeps: a second copy of the account's text and key was
        ~50 B a position). Equal to ``ScopeKey(account.venue, account.account, scope)``;
        raises :class:`IdError` for a bad ``scope``."""
        _check_scope(scope)
        key = object.__new__(cls)
        text = account._text
        object.__setattr__(key, "venue", account.venue)
        object.__setattr__(key, "account", account.account)
        object.__setattr__(key, "scope", scope)
        object.__setattr__(key, "_account", text)
        object.__setattr__(key, "_text", f"{text}/{encode_scope(scope)}")
        object.__setattr__(key, "_account_key", account)
        return key

    @property
    def account_key(self) -> AccountKey:
        """The account's key (made once per scope key: every lookup of a scope reads it)."""
        key = self._account_key
        if key is None:
            key = AccountKey._checked(self.venue, self.account, self._account)
            object.__setattr__(self, "_account_key", key)
        return key

    @property
    def account_text(self) -> str:
        """``str(self.account_key)``, without building the key."""
        return self._account

    def __str__(self) -> str:
        return self._text

    def __hash__(self) -> int:
        # the text's hash, which a str caches: the generated one hashed a tuple of the three
        # fields on every lookup (a scope key is looked up several times per evaluation).
        # Equal keys have equal texts, so equal hashes
        return hash(self._text)


@dataclass(frozen=True, slots=True, order=True)
class PositionKey:
    """One position (a symbol) of one scope: ``VENUE:ACCOUNT/SCOPE#SYMBOL``."""

    scope: ScopeKey
    symbol: str

    def __post_init__(self) -> None:
        if not isinstance(self.symbol, str) or not self.symbol:
            raise IdError(f"symbol {self.symbol!r}: a symbol cannot be empty")

    def __str__(self) -> str:
        return f"{self.scope}#{self.symbol}"


@dataclass(frozen=True, slots=True, order=True)
class FeedKey:
    """A venue's feed (``channel`` None) or one of its channels: ``feed:VENUE[/CHANNEL]``."""

    venue: str
    channel: str | None = None

    def __post_init__(self) -> None:
        check_venue(self.venue)
        if self.channel is not None and (not isinstance(self.channel, str) or not self.channel):
            raise IdError(f"feed channel {self.channel!r}: a channel name cannot be empty")

    def __str__(self) -> str:
        return f"{FEED}:{self.venue}" + (f"/{self.channel}" if self.channel is not None else "")


@dataclass(frozen=True, slots=True, order=True)
class MonitorKey:
    """The monitor itself: ``monitor``."""

    def __str__(self) -> str:
        return MONITOR


Subject = AccountKey | ScopeKey | PositionKey | FeedKey | MonitorKey


@dataclass(frozen=True, slots=True)
class Parsed:
    """What :func:`parse_subject` found: the ``subject`` and notes for the user (an alias
    normalised, an address lower-cased)."""

    subject: Subject
    notes: tuple[str, ...] = ()


def normalise_account(venue: str, account: str) -> str:
    """A Hyperliquid address as the venue reports it (lower-case), with its ``@dex`` part
    kept; any other account unchanged."""
    if venue != "hyperliquid":
        return account
    address, at, dex = account.partition("@")
    if _HL_ADDRESS.match(address):
        return address.lower() + at + dex
    return account


def parse_subject(text: str, *, lenient: bool = False) -> Subject:
    """The identity written as ``text`` (any form of the module docstring). Raises IdError.

    ``lenient``: accept what a person types: a venue alias or upper case (``binance_usdm``,
    ``Hyperliquid``) and a checksummed Hyperliquid address; see :func:`parse_user`."""
    return parse_user(text).subject if lenient else _parse(text, lenient=False)[0]


def parse_user(text: str) -> Parsed:
    """:func:`parse_subject` for a name a person typed: venue aliases and capitals become the
    canonical venue name, a checksummed Hyperliquid address becomes lower-case, each with a
    note. Raises IdError."""
    subject, notes = _parse(text, lenient=True)
    return Parsed(subject, tuple(notes))


def _venue(raw: str, lenient: bool, notes: list[str]) -> str:
    if not lenient:
        return check_venue(raw)
    venue = canonical(raw)
    if venue != raw:
        why = "an old spelling of" if is_alias(raw) else "written as"
        notes.append(f"venue {raw!r} is {why} {venue!r}")
    return check_venue(venue)


def _parse(text: str, *, lenient: bool) -> tuple[Subject, list[str]]:
    if not isinstance(text, str) or not text:
        raise IdError("empty name")
    notes: list[str] = []
    if text == MONITOR:
        return MonitorKey(), notes
    raw_venue, sep, rest = text.partition(":")
    if not sep:
        raise IdError(
            f"{text!r}: no venue; write VENUE:ACCOUNT[/SCOPE[#SYMBOL]], feed:VENUE[/CHANNEL]"
            " or monitor"
        )
    if raw_venue == FEED or (lenient and raw_venue.lower() == FEED):
        venue_text, slash, channel = rest.partition("/")
        venue = _venue(venue_text, lenient, notes)
        if slash and not channel:
            raise IdError(f"{text!r}: empty feed channel after '/'")
        return FeedKey(venue, channel if slash else None), notes
    venue = _venue(raw_venue, lenient, notes)
    base, hash_, symbol = rest.partition("#")
    if hash_ and not symbol:
        raise IdError(f"{text!r}: empty symbol after '#'")
    account_text, slash, scope_text = base.rpartition("/")
    scope: str | None = None
    if slash:
        decoded = _decode(scope_text, "scope")
        if is_scope_word(decoded):
            scope = decoded
        elif lenient and "%" not in scope_text:
            meant = near_scope_word(decoded)
            if meant is not None:
                raise IdError(
                    f"{text!r}: {decoded!r} is not a scope; did you mean {meant!r}? (an account"
                    f" whose name ends in '/{decoded}' is written with that '/' as %2F)"
                )
    if scope is None:
        account_text = base
        if hash_:
            raise IdError(f"{text!r}: a position needs a scope: VENUE:ACCOUNT/SCOPE#SYMBOL")
    account = _decode(account_text, "account")
    if lenient:
        normal = normalise_account(venue, account)
        if normal != account:
            notes.append(f"address {account!r} is {normal!r} at the venue")
        account = normal
    if scope is None:
        return AccountKey(venue, account), notes
    key = ScopeKey(venue, account, scope)
    return (PositionKey(key, symbol) if hash_ else key), notes


def account_of(subject: Subject) -> AccountKey | None:
    """The account a subject belongs to (None for a feed or the monitor)."""
    if isinstance(subject, AccountKey):
        return subject
    if isinstance(subject, ScopeKey):
        return subject.account_key
    if isinstance(subject, PositionKey):
        return subject.scope.account_key
    return None


def covers(target: Subject, subject: Subject) -> bool:
    """True when ``subject`` is ``target`` or lies under it, comparing parts, never text
    prefixes: an account covers its scopes and positions, a scope its positions, a feed
    (no channel) its channels, the monitor only itself. ``desk`` never covers ``desk/hedge``."""
    if target == subject:
        return True
    if isinstance(target, AccountKey):
        account = account_of(subject)
        if account is None:
            return False
        # a Hyperliquid address covers its HIP-3 dex accounts (ADDR@dex), not the reverse
        return account == target or (
            account.venue == target.venue
            and "@" not in target.account
            and account.account.partition("@")[0] == target.account
        )
    if isinstance(target, ScopeKey):
        return isinstance(subject, PositionKey) and subject.scope == target
    if isinstance(target, FeedKey):
        return (
            target.channel is None
            and isinstance(subject, FeedKey)
            and subject.venue == target.venue
        )
    return False
