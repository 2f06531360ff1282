"""Accounts read with a read-only API key (Binance USDⓈ-M, Bybit v5, OKX): the shared half.

What every venue module shares:

* :class:`KeyAccount`: one account's credentials and endpoints; its ``repr`` masks the key and
  never shows the secret or passphrase (:func:`mask`).
* Request signing: :func:`hmac_hex` (Binance, Bybit: hex HMAC-SHA256) and :func:`hmac_b64`
  (OKX: base64 HMAC-SHA256), over the exact payload each venue documents.
* :class:`ClockOffset`: the venue's clock minus ours, in milliseconds. A timestamp refusal
  (Binance -1021, Bybit 10002, OKX 50102) re-reads the venue's server time and retries once.
* :class:`RateBudget`: a request-weight budget per rolling window, plus a hard stop after a
  429/418 until its ``Retry-After``.
* :class:`Permissions`: what the venue says the key may do; :meth:`Permissions.refusal` refuses
  a key that can trade, withdraw or transfer funds unless ``allow_trading_key``.
* :class:`KeyFeed`: the forever loop (a :class:`~monitor.venues.feed.Feed`) around one venue's
  :class:`PrivateVenue`: permission check, REST snapshot, private stream with heartbeat,
  keepalive and lifetime, REST re-snapshot on start, after every reconnect, periodically and
  (debounced) after stream updates; stream silence ⇒ ``STALE`` + re-snapshot + reconnect.

Every status is a ``FeedStatus(venue, channel=f"account:{name}", state, detail)``; the detail
names the account (``binanceusdm:main``) and never contains a key or secret.

Time comes only from the injected :class:`~monitor.clock.Clock` (``now()`` for request
timestamps and ``ts_recv``, ``monotonic()`` for intervals, ``sleep()`` for waits).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import math
import random
import re
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import aiohttp
import structlog
import websockets
from websockets.asyncio.client import ClientConnection

from monitor.clock import Clock, SystemClock
from monitor.errors import ConfigError, MonitorError, RetryableError
from monitor.logs import register_secret
from monitor.model.events import (
    AccountSnapshot,
    Event,
    FeedState,
    FeedStatus,
    MarkPrice,
    PositionUpdate,
)
from monitor.model.portfolio import Portfolio
from monitor.model.positions import Position
from monitor.model.venues import BINANCE_USDM, BYBIT, OKX, canonical
from monitor.venues.backoff import Backoff
from monitor.venues.feed import Emit, Feed, Recorder

log = structlog.get_logger()


def marks_of(ev: Event) -> list[MarkPrice]:
    """The venue's marks an account event carries, as prices. A position's ``mark_price``
    only seeds an instrument's price the first time it is seen, so without a price feed
    of the venue (an API-key account's symbols are not known before it is read) the marks
    of every later snapshot and stream update would be lost and the positions priced at
    their first mark for ever."""
    if isinstance(ev, AccountSnapshot):
        positions: tuple[Position, ...] = ev.positions
    elif isinstance(ev, PositionUpdate):
        positions = (ev.position,)
    else:
        return []
    return [
        MarkPrice(ev.venue, p.symbol, p.mark_price, oracle=p.oracle_price, ts_recv=ev.ts_recv)
        for p in positions
        if p.mark_price is not None and math.isfinite(p.mark_price) and p.mark_price > 0.0
    ]


KEY_VENUES = (BINANCE_USDM, BYBIT, OKX)
"""Venues whose accounts can be read with an API key."""


# -- credentials ----------------------------------------------------------------------------
def mask(value: str | None) -> str:
    """A key shown safely: its first and last 4 characters when it is longer than 12, else
    ``****``; ``-`` when absent. Secrets and passphrases are never shown, masked or not."""
    if not value:
        return "-"
    if len(value) > 12:
        return f"{value[:4]}…{value[-4:]}"
    return "****"


@dataclass(frozen=True, slots=True)
class KeyAccount:
    """One venue account read with an API key.

    ``venue``: canonical venue name (``binanceusdm``, ``bybit``, ``okx``); ``name``: the
    account name after the colon of its id (``binanceusdm:main`` → ``main``); ``password``:
    the OKX API passphrase (None elsewhere); ``allow_trading_key``: accept a key that can
    trade/withdraw/transfer (refused by default); ``rest_url``/``ws_url``: endpoint overrides
    (Binance: ``rest_url`` serves both the futures and the spot API, ``ws_url`` is the base the
    listen key is appended to); ``portfolio_margin``: a Binance Portfolio Margin account (read
    through the ``papi`` API). ``repr`` masks the key and hides the secret and passphrase.
    """

    venue: str
    name: str
    api_key: str = field(repr=False)
    secret: str = field(repr=False)
    password: str | None = field(default=None, repr=False)
    allow_trading_key: bool = False
    rest_url: str | None = None
    ws_url: str | None = None
    portfolio_margin: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "venue", canonical(self.venue))
        if self.venue not in KEY_VENUES:
            raise ValueError(
                f"{self.venue!r} accounts cannot be read with a key (known: "
                f"{', '.join(KEY_VENUES)})"
            )
        if not self.api_key or not self.secret:
            raise ValueError(f"{self.id}: api_key and secret are required")
        if self.venue == OKX and not self.password:
            raise ValueError(f"{self.id}: an OKX key needs its passphrase (password)")
        if self.portfolio_margin and self.venue != BINANCE_USDM:
            raise ValueError(f"{self.id}: portfolio_margin applies to Binance accounts only")

    @property
    def id(self) -> str:
        """``venue:name``, the account id users write."""
        return f"{self.venue}:{self.name}"

    @property
    def channel(self) -> str:
        """The ``FeedStatus.channel`` of this account's stream."""
        return f"account:{self.name}"

    def __repr__(self) -> str:
        return (
            f"KeyAccount(venue={self.venue!r}, name={self.name!r}, "
            f"api_key={mask(self.api_key)!r}, secret='***', "
            f"password={'***' if self.password else None!r}, "
            f"allow_trading_key={self.allow_trading_key!r}, rest_url={self.rest_url!r}, "
            f"ws_url={self.ws_url!r}, portfolio_margin={self.portfolio_margin!r})"
        )

    __str__ = __repr__

    def scrub(self, text: str) -> str:
        """``text`` with this account's key, secret and passphrase replaced by ``***``."""
        for s in (self.api_key, self.secret, self.password):
            if s:
                text = text.replace(s, "***")
        return text


# -- configuration ----------------------------------------------------------------------------
_SECRET_REF = re.compile(r"^\$\{(?:(file|cred):)?([A-Za-z_][A-Za-z0-9_.-]*)\}$")
KEY_ACCOUNT_KEYS = frozenset(
    {
        "id",
        "api_key",
        "secret",
        "password",
        "allow_trading_key",
        "rest_url",
        "ws_url",
        "portfolio_margin",
    }
)


def _secret(
    raw: Any,
    source: str,
    path: str,
    env: Mapping[str, str],
    credentials_dir: Path | None,
) -> str:
    """A secret given as ``${ENV_VAR}`` or ``${file:NAME}``/``${cred:NAME}`` (a file in
    ``$CREDENTIALS_DIRECTORY``), never literally in the file."""
    if not isinstance(raw, str):
        raise ConfigError(source, path, 'expected a string such as "${BINANCE_API_KEY}"')
    m = _SECRET_REF.match(raw.strip())
    if m is None:
        raise ConfigError(
            source,
            path,
            "must be a reference, ${ENV_VAR} or ${file:NAME} ($CREDENTIALS_DIRECTORY), "
            "never the secret itself",
        )
    kind, name = m.group(1), m.group(2)
    if kind is None:
        value = env.get(name)
        if value is None:
            raise ConfigError(source, path, f"environment variable {name} is not set")
    else:
        if credentials_dir is None:
            raise ConfigError(
                source,
                path,
                f"credential {name!r} needs $CREDENTIALS_DIRECTORY (systemd LoadCredential=), "
                "which is not set",
            )
        file = credentials_dir / name
        try:
            value = file.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise ConfigError(
                source, path, f"cannot read credential {file}: {exc.strerror}"
            ) from None
    value = value.strip()
    if not value:
        raise ConfigError(source, path, f"secret {raw} is empty")
    register_secret(value)
    return value


def is_key_account(table: Mapping[str, Any]) -> bool:
    """True for an ``[[accounts]]`` entry that is read with an API key (has ``api_key``)."""
    return "api_key" in table


def key_account_from_toml(
    table: Mapping[str, Any],
    source: str,
    path: str,
    *,
    env: Mapping[str, str],
) -> KeyAccount:
    """One ``[[accounts]]`` table read with a key → :class:`KeyAccount`.

    Keys: ``id = "binanceusdm:main"`` (venue, any alias, then the account name), ``api_key``,
    ``secret`` and, for OKX, ``password`` as ``${ENV_VAR}`` or ``${file:NAME}``;
    ``allow_trading_key`` (bool, default false); ``rest_url``/``ws_url`` (str, optional);
    ``portfolio_margin`` (bool, default false; Binance Portfolio Margin accounts).
    Raises :class:`ConfigError` naming ``source`` and the key path. Every secret read is
    registered with the log redactor."""
    for k in table:
        if k not in KEY_ACCOUNT_KEYS:
            raise ConfigError(source, f"{path}.{k}", "unknown key for an account read by API key")
    ident = table.get("id")
    if not isinstance(ident, str) or ":" not in ident:
        raise ConfigError(source, f"{path}.id", 'expected "venue:name", e.g. "binanceusdm:main"')
    venue_raw, name = ident.split(":", 1)
    venue = canonical(venue_raw)
    if venue not in KEY_VENUES:
        raise ConfigError(
            source,
            f"{path}.id",
            f"{venue_raw!r} accounts cannot be read with a key (known: {', '.join(KEY_VENUES)})",
        )
    if not name.strip():
        raise ConfigError(source, f"{path}.id", "the account name after the colon is empty")
    cdir = env.get("CREDENTIALS_DIRECTORY")
    creds = Path(cdir) if cdir else None
    password: str | None = None
    if venue == OKX or "password" in table:
        if "password" not in table:
            raise ConfigError(source, f"{path}.password", "an OKX key needs its passphrase")
        password = _secret(table["password"], source, f"{path}.password", env, creds)
    allow = table.get("allow_trading_key", False)
    if not isinstance(allow, bool):
        raise ConfigError(source, f"{path}.allow_trading_key", "expected true or false")
    pm = table.get("portfolio_margin", False)
    if not isinstance(pm, bool):
        raise ConfigError(source, f"{path}.portfolio_margin", "expected true or false")
    if pm and venue != BINANCE_USDM:
        raise ConfigError(
            source, f"{path}.portfolio_margin", "applies to Binance (binanceusdm) accounts only"
        )
    urls: dict[str, str | None] = {}
    for k in ("rest_url", "ws_url"):
        v = table.get(k)
        if v is not None and not (isinstance(v, str) and "://" in v):
            raise ConfigError(source, f"{path}.{k}", "expected a URL")
        urls[k] = v
    return KeyAccount(
        venue=venue,
        name=name.strip(),
        api_key=_secret(table.get("api_key"), source, f"{path}.api_key", env, creds),
        secret=_secret(table.get("secret"), source, f"{path}.secret", env, creds),
        password=password,
        allow_trading_key=allow,
        rest_url=urls["rest_url"],
        ws_url=urls["ws_url"],
        portfolio_margin=pm,
    )


def key_accounts_from_toml(
    doc: Mapping[str, Any], source: str, *, env: Mapping[str, str]
) -> list[KeyAccount]:
    """Every ``[[accounts]]`` entry of a parsed configuration that has an ``api_key``."""
    raw = doc.get("accounts", [])
    if not isinstance(raw, list):
        raise ConfigError(source, "accounts", "expected [[accounts]] tables")
    out: list[KeyAccount] = []
    seen: set[str] = set()
    for i, t in enumerate(raw):
        if isinstance(t, Mapping) and is_key_account(t):
            acct = key_account_from_toml(t, source, f"accounts[{i}]", env=env)
            if acct.id in seen:
                raise ConfigError(source, f"accounts[{i}].id", f"{acct.id} is given twice")
            seen.add(acct.id)
            out.append(acct)
    return out


# -- signing --------------------------------------------------------------------------------
def hmac_hex(secret: str, payload: str) -> str:
    """Hex HMAC-SHA256 of ``payload`` (Binance: the query string; Bybit: timestamp + key +
    recv_window + query/body)."""
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def hmac_b64(secret: str, payload: str) -> str:
    """Base64 HMAC-SHA256 of ``payload`` (OKX: timestamp + METHOD + request path + body)."""
    return base64.b64encode(
        hmac.new(secret.encode(), payload.encode(), hashlib.sha256).digest()
    ).decode()


# -- errors ---------------------------------------------------------------------------------
class KeyRejected(MonitorError):
    """The venue refused the key (401, invalid key, bad signature, IP not allowed, missing
    read permission). Retrying soon will not help; the message names the account."""


class NotReadOnly(MonitorError):
    """The key can trade, withdraw or move funds and ``allow_trading_key`` is not set."""


class TimestampRejected(RetryableError):
    """The venue refused the request's timestamp (clock offset): resync and retry."""


class RateLimited(RetryableError):
    """HTTP 429/418 or a venue rate-limit code; ``retry_after`` in seconds."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class VenueUnavailable(RetryableError):
    """A 5xx or a documented maintenance/system-busy answer; ``retry_after`` in seconds."""

    def __init__(self, message: str, retry_after: float = 30.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def retry_after_seconds(headers: Any, default: float) -> float:
    """``Retry-After`` (seconds) of a response, ``default`` when absent or not a number."""
    raw = headers.get("Retry-After") if headers is not None else None
    try:
        value = float(raw) if raw is not None else default
    except ValueError:
        return default
    return value if value >= 0 else default


# -- clock offset ---------------------------------------------------------------------------
@dataclass
class ClockOffset:
    """The venue's clock minus ours, in milliseconds (0 until the first resync)."""

    offset_ms: float = 0.0
    resyncs: int = 0

    def stamp_ms(self, now: float) -> int:
        """The request timestamp in venue milliseconds for our wall time ``now`` (s)."""
        return int(now * 1000.0 + self.offset_ms)

    def update(self, server_ms: float, sent: float, received: float) -> None:
        """Set the offset from a server time read between our ``sent`` and ``received``
        wall times (seconds): the server stamped it half-way, give or take."""
        self.offset_ms = server_ms - (sent + received) * 500.0
        self.resyncs += 1


# -- rate budget ----------------------------------------------------------------------------
class RateBudget:
    """At most ``limit`` request weight per ``window`` seconds, and nothing at all before
    ``blocked_until`` (set by a 429/418 ``Retry-After``). Monotonic times in seconds."""

    def __init__(self, limit: float, window: float) -> None:
        self.limit = limit
        self.window = window
        self._spent: deque[tuple[float, float]] = deque()
        self.blocked_until = 0.0

    def used(self, now: float) -> float:
        while self._spent and now - self._spent[0][0] >= self.window:
            self._spent.popleft()
        return sum(w for _, w in self._spent)

    def wait_for(self, weight: float, now: float) -> float:
        """Seconds to wait before spending ``weight`` at ``now`` (0: go)."""
        if now < self.blocked_until:
            return self.blocked_until - now
        if self.used(now) + weight <= self.limit or not self._spent:
            return 0.0
        # wait until enough old spending leaves the window
        need = self.used(now) + weight - self.limit
        freed = 0.0
        for t, w in self._spent:
            freed += w
            if freed >= need:
                return max(t + self.window - now, 0.0)
        return self.window

    def spend(self, weight: float, now: float) -> None:
        self._spent.append((now, weight))

    def block(self, seconds: float, now: float) -> None:
        self.blocked_until = max(self.blocked_until, now + seconds)

    async def acquire(self, weight: float, clock: Clock) -> None:
        while True:
            delay = self.wait_for(weight, clock.monotonic())
            if delay <= 0.0:
                self.spend(weight, clock.monotonic())
                return
            await clock.sleep(delay)


# -- permissions ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Permissions:
    """What the venue says a key may do. ``detail``: the venue's own words, for messages."""

    read: bool
    trade: bool
    withdraw: bool
    transfer: bool = False
    detail: str = ""

    @property
    def read_only(self) -> bool:
        return self.read and not (self.trade or self.withdraw or self.transfer)

    def refusal(self, account: KeyAccount) -> str | None:
        """Why ``account``'s key is refused, or None when it may be used."""
        if not self.read:
            return f"{account.id}: the API key cannot read the account ({self.detail})"
        can = [
            w
            for w, on in (
                ("trade", self.trade),
                ("withdraw", self.withdraw),
                ("transfer funds", self.transfer),
            )
            if on
        ]
        if can and not account.allow_trading_key:
            return (
                f"{account.id}: the API key can {' and '.join(can)} ({self.detail}); "
                "use a read-only key, or set allow_trading_key = true"
            )
        return None


# -- our figures beside the venue's ----------------------------------------------------------
def liquidation_divergences(
    snap: AccountSnapshot, tolerance: float
) -> dict[str, tuple[float, float]]:
    """Positions of ``snap`` whose liquidation price by our margin rules (at the snapshot's
    own marks) differs from the venue's ``venue_liquidation_price`` by more than
    ``tolerance`` (a fraction of the venue's figure): symbol → (ours, venue's). Positions
    where either figure is missing are not compared."""
    pf = Portfolio()
    pf.apply(snap)
    out: dict[str, tuple[float, float]] = {}
    for risk in pf.risks():
        for p in risk.positions:
            ours, theirs = p.liquidation_price, p.venue_liquidation_price
            if ours is None or theirs is None or theirs <= 0.0:
                continue
            if abs(ours - theirs) > tolerance * theirs:
                out[p.symbol] = (ours, theirs)
    return out


# -- the venue half -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class StreamFrame:
    """What one private-stream frame means. ``events``: to emit; ``data``: the frame was
    account data or a heartbeat answer (the stream is alive); ``resnapshot``: the frame
    changed positions without every figure (no mark/liquidation price), so ask REST soon;
    ``reconnect``: a reason to drop the stream now (listen key expired, login refused);
    ``fatal``: the venue refused the key on the stream."""

    events: tuple[Event, ...] = ()
    data: bool = True
    resnapshot: bool = False
    reconnect: str | None = None
    fatal: str | None = None


class PrivateVenue(Protocol):
    """One venue's private API as :class:`KeyFeed` drives it."""

    account: KeyAccount
    #: app-level heartbeat text; None: protocol-level WebSocket ping
    heartbeat_message: str | None
    #: seconds between keepalive calls (Binance listen key), None: none
    keepalive_interval: float | None
    #: the venue closes a stream after this many seconds (Binance: 24 h), None: no limit
    max_lifetime: float | None

    async def permissions(self) -> Permissions: ...

    async def snapshot(self, ts_recv: float) -> AccountSnapshot: ...

    async def stream_url(self) -> str: ...

    async def on_open(self, ws: ClientConnection) -> None: ...

    def parse(self, frame: str, ts_recv: float) -> StreamFrame: ...

    async def keepalive(self) -> str | None: ...

    async def close_stream(self) -> None: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True, slots=True)
class KeySettings:
    """Timing of a :class:`KeyFeed`, in seconds.

    ``resnapshot_interval``: periodic REST re-snapshot (venue liquidation price, marks,
    brackets); ``update_resnapshot_delay``: REST re-snapshot this long after a stream update
    that lacks figures (Binance ``ACCOUNT_UPDATE``), debounced; ``heartbeat_interval``: ping
    cadence; ``max_silence``: no frame and no pong for this long ⇒ STALE, re-snapshot,
    reconnect; ``recheck_interval``: how long a refused key waits before asking again.
    """

    resnapshot_interval: float = 60.0
    update_resnapshot_delay: float = 2.0
    heartbeat_interval: float = 20.0
    max_silence: float = 45.0
    check_interval: float = 1.0
    recheck_interval: float = 600.0
    open_timeout: float = 10.0
    close_timeout: float = 2.0
    backoff_initial: float = 1.0
    backoff_cap: float = 60.0
    stable_after: float = 30.0
    #: Binance: listen-key keepalive (the key lapses after 60 min without one)
    listen_key_keepalive: float = 30 * 60.0
    #: Binance: a user-data connection lives at most 24 h; renew ahead of it
    binance_max_lifetime: float = 23.5 * 3600.0
    #: our liquidation price vs the venue's, as a fraction of the venue's: beyond it, logged
    divergence_tolerance: float = 0.005


_TROUBLE = (FeedState.STALE, FeedState.DOWN)


class _Drop(Exception):
    """End the stream session now; ``reason`` becomes the DOWN status detail."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class KeyFeed:
    """The forever loop of one key account (see the module docstring).

    Statuses on ``account:{name}``: CONNECTING at start; LIVE once snapshot and stream are up
    (RECOVERED instead after a STALE or DOWN); STALE when the stream went silent; DOWN with
    the reason on any failure (refused key, rate limit, maintenance, dropped stream).
    """

    def __init__(
        self,
        venue: PrivateVenue,
        settings: KeySettings | None = None,
        *,
        clock: Clock | None = None,
        recorder: Recorder | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.impl = venue
        self.account = venue.account
        self.venue = venue.account.venue
        self.settings = settings or KeySettings()
        self.clock: Clock = clock or SystemClock()
        self.recorder = recorder
        s = self.settings
        self.backoff = Backoff(
            initial=s.backoff_initial,
            cap=s.backoff_cap,
            stable_after=s.stable_after,
            rng=rng or random.Random(),
        )
        self.snapshots = 0
        self.connects = 0
        self.bad_frames = 0
        self.last_status: FeedStatus | None = None
        #: symbol → (our liquidation price, the venue's) where they differ beyond tolerance
        self.diverging: dict[str, tuple[float, float]] = {}
        self._permitted = False
        self._emit: Emit | None = None
        self._log = log.bind(venue=self.venue, account=self.account.id)

    # -- status ------------------------------------------------------------------------------
    def _status(self, state: FeedState, detail: str) -> None:
        assert self._emit is not None
        detail = self.account.scrub(detail)
        prev = self.last_status
        if state is FeedState.LIVE and prev is not None and prev.state in _TROUBLE:
            state = FeedState.RECOVERED
        st = FeedStatus(self.venue, self.account.channel, state, detail, ts_recv=self.clock.now())
        self.last_status = st
        self._emit(st)

    # -- the loop ----------------------------------------------------------------------------
    async def run(self, emit: Emit) -> None:
        self._emit = emit
        self._status(FeedState.CONNECTING, f"{self.account.id}: starting")
        try:
            while True:
                delay = await self._attempt(emit)
                await self.clock.sleep(delay)
        finally:
            with contextlib.suppress(Exception):
                await self.impl.aclose()

    async def _attempt(self, emit: Emit) -> float:
        """One session: returns how long to wait before the next."""
        acct = self.account
        try:
            if not self._permitted:
                perms = await self.impl.permissions()
                why = perms.refusal(acct)
                if why is not None:
                    raise NotReadOnly(why)
                self._permitted = True
                self._log.info("keys.permissions_ok", detail=perms.detail)
            await self._snapshot(emit)
            reason = f"{acct.id}: {await self._stream(emit)}"
        except asyncio.CancelledError:
            raise
        except NotReadOnly as exc:
            self._permitted = False
            self._down(f"refused: {exc}")
            return self.settings.recheck_interval
        except KeyRejected as exc:
            self._permitted = False
            self._down(f"{acct.id}: API key rejected: {exc}")
            return self.settings.recheck_interval
        except (RateLimited, VenueUnavailable) as exc:
            what = "rate limited" if isinstance(exc, RateLimited) else "venue unavailable"
            self._down(f"{acct.id}: {what}: {exc} (retry in {exc.retry_after:g}s)")
            return max(exc.retry_after, self.backoff.next_delay())
        except RetryableError as exc:
            reason = f"{acct.id}: {exc}"
        except Exception as exc:  # a bug must not end the feed: logged in full, retried
            self._log.exception("keys.session_failed")
            reason = f"{acct.id}: error: {str(exc)[:200] or type(exc).__name__}"
        self.backoff.on_disconnected(self.clock.monotonic())
        self._down(reason)
        return self.backoff.next_delay()

    def _down(self, reason: str) -> None:
        self._log.warning("keys.down", reason=self.account.scrub(reason))
        self._status(FeedState.DOWN, reason)

    async def _snapshot(self, emit: Emit) -> None:
        snap = await self.impl.snapshot(self.clock.now())
        self.snapshots += 1
        emit(snap)
        for mark in marks_of(snap):
            emit(mark)
        self._compare(snap)

    def _compare(self, snap: AccountSnapshot) -> None:
        """Log (once per change) positions whose liquidation price by our rules differs from
        the venue's beyond ``divergence_tolerance``, and when they agree again."""
        try:
            now = liquidation_divergences(snap, self.settings.divergence_tolerance)
        except Exception:  # a figure we cannot compute must not cost the feed
            self._log.exception("keys.compare_failed")
            return
        for symbol, (ours, theirs) in now.items():
            if symbol not in self.diverging:
                self._log.warning(
                    "keys.liquidation_divergence",
                    symbol=symbol,
                    ours=round(ours, 6),
                    venue=theirs,
                    tolerance=self.settings.divergence_tolerance,
                )
        for symbol in self.diverging.keys() - now.keys():
            self._log.info("keys.liquidation_agrees", symbol=symbol)
        self.diverging = now

    async def _stream(self, emit: Emit) -> str:
        s = self.settings
        url = await self.impl.stream_url()
        try:
            async with websockets.connect(
                url,
                open_timeout=s.open_timeout,
                close_timeout=s.close_timeout,
                ping_interval=None,
                max_size=16 * 1024 * 1024,
            ) as ws:
                self.connects += 1
                self.backoff.on_connected(self.clock.monotonic())
                await self.impl.on_open(ws)
                try:
                    return await self._session(ws, emit)
                finally:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(ws.close(), s.close_timeout)
                    with contextlib.suppress(Exception):
                        await self.impl.close_stream()
        except _Drop as exc:
            return exc.reason
        except websockets.ConnectionClosed as exc:
            rcvd = exc.rcvd
            if rcvd is None:
                return "stream lost (1006)"
            return (
                f"stream closed by venue ({rcvd.code}{': ' + rcvd.reason if rcvd.reason else ''})"
            )
        except (OSError, TimeoutError, websockets.InvalidHandshake, websockets.InvalidURI) as exc:
            return f"stream connect failed: {str(exc)[:200] or type(exc).__name__}"

    async def _session(self, ws: ClientConnection, emit: Emit) -> str:
        state = _SessionState(self.clock.monotonic())
        # the snapshot was read before the stream was up: what changed in between reached
        # no stream, so read the account again once it is
        state.resnapshot_at = state.opened + self.settings.update_resnapshot_delay
        self._status(FeedState.LIVE, f"{self.account.id}: snapshot and stream up")
        tasks = [
            asyncio.create_task(self._reader(ws, emit, state)),
            asyncio.create_task(self._ticker(ws, emit, state)),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                exc = t.exception()
                if exc is not None:
                    raise exc
            code, why = ws.close_code, ws.close_reason
            return f"stream closed by venue ({code}{': ' + why if why else ''})"
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _reader(self, ws: ClientConnection, emit: Emit, state: _SessionState) -> None:
        async for message in ws:
            now = self.clock.now()
            text = message if isinstance(message, str) else message.decode("utf-8", "replace")
            text = self.account.scrub(text)  # before any message cuts it short
            if self.recorder is not None:
                self.recorder(now, self.venue, self.account.channel, text)
            try:
                frame = self.impl.parse(text, now)
            except Exception as exc:  # bad input never crashes: logged, counted, skipped
                self.bad_frames += 1
                self._log.warning(
                    "keys.bad_frame",
                    problem=str(exc)[:160],
                    frame=text[:200],
                    count=self.bad_frames,
                )
                continue
            if frame.fatal is not None:
                raise KeyRejected(frame.fatal)
            if frame.data:
                state.last_data = self.clock.monotonic()
                if self.last_status is not None and self.last_status.state is FeedState.STALE:
                    self._status(FeedState.LIVE, f"{self.account.id}: stream flowing again")
            for ev in frame.events:
                emit(ev)
                for mark in marks_of(ev):
                    emit(mark)
            if frame.resnapshot and state.resnapshot_at is None:
                state.resnapshot_at = self.clock.monotonic() + self.settings.update_resnapshot_delay
            if frame.reconnect is not None:
                raise _Drop(frame.reconnect)

    async def _ticker(self, ws: ClientConnection, emit: Emit, state: _SessionState) -> None:
        s = self.settings
        impl = self.impl
        pong: Awaitable[float] | None = None
        while True:
            await self.clock.sleep(s.check_interval)
            mono = self.clock.monotonic()
            if pong is not None and isinstance(pong, asyncio.Future) and pong.done():
                if not pong.cancelled() and pong.exception() is None:
                    state.last_data = mono
                pong = None
            if mono - state.last_data > s.max_silence:
                detail = (
                    f"no stream data or pong for {mono - state.last_data:.1f}s "
                    f"(limit {s.max_silence:g}s)"
                )
                self._log.warning("keys.stale", detail=detail)
                self._status(FeedState.STALE, f"{self.account.id}: {detail}")
                with contextlib.suppress(RetryableError, KeyRejected):
                    await self._snapshot(emit)
                raise _Drop(f"stale: {detail}")
            if mono - state.last_ping >= s.heartbeat_interval:
                state.last_ping = mono
                if impl.heartbeat_message is None:
                    if pong is None:
                        pong = await ws.ping()
                else:
                    await ws.send(impl.heartbeat_message)
            if impl.keepalive_interval is not None and (
                mono - state.last_keepalive >= impl.keepalive_interval
            ):
                state.last_keepalive = mono
                why = await self._guarded(impl.keepalive())
                if why:
                    raise _Drop(why)
            if impl.max_lifetime is not None and mono - state.opened >= impl.max_lifetime:
                raise _Drop(f"stream lifetime {impl.max_lifetime:g}s reached: renewing")
            due = state.resnapshot_at is not None and mono >= state.resnapshot_at
            if due or mono - state.last_snapshot >= s.resnapshot_interval:
                state.resnapshot_at = None
                state.last_snapshot = mono
                await self._guarded(self._snapshot(emit))

    async def _guarded(self, call: Awaitable[str | None]) -> str | None:
        """A REST call inside a live session: a transient failure is logged and waited out
        (the stream stays up); a refused key ends the session."""
        try:
            return await call
        except RateLimited as exc:
            self._log.warning("keys.rate_limited", error=self.account.scrub(str(exc)))
            return None
        except RetryableError as exc:
            self._log.warning("keys.rest_failed", error=self.account.scrub(str(exc)))
            return None


@dataclass
class _SessionState:
    opened: float
    last_data: float = 0.0
    last_ping: float = 0.0
    last_keepalive: float = 0.0
    last_snapshot: float = 0.0
    resnapshot_at: float | None = None

    def __post_init__(self) -> None:
        self.last_data = self.last_ping = self.opened
        self.last_keepalive = self.last_snapshot = self.opened


# -- shared REST plumbing -------------------------------------------------------------------
class RestClient:
    """An aiohttp session with the shared request discipline: rate budget, timeouts, body
    decoding, the venue's error mapping (``classify``) and one retry after a clock resync.

    ``classify(status, headers, body) -> Exception | None`` turns a venue answer into one of
    :class:`KeyRejected`, :class:`TimestampRejected`, :class:`RateLimited`,
    :class:`VenueUnavailable` or :class:`RetryableError` (None: success).
    """

    def __init__(
        self,
        account: KeyAccount,
        clock: Clock,
        budget: RateBudget,
        classify: Callable[[int, Any, str], Exception | None],
        resync: Callable[[], Awaitable[None]],
        *,
        timeout: float = 10.0,
    ) -> None:
        self.account = account
        self.clock = clock
        self.budget = budget
        self.classify = classify
        self.resync = resync
        self.timeout = timeout
        self._http: aiohttp.ClientSession | None = None
        self.calls: list[str] = []

    @property
    def http(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession()
        return self._http

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def raw(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        body: str | None = None,
        weight: float = 1.0,
    ) -> tuple[int, Any, str]:
        """One request: (status, headers, body text). Transport failures raise
        :class:`RetryableError` with the key scrubbed from the message."""
        await self.budget.acquire(weight, self.clock)
        path = urlsplit(url).path
        self.calls.append(f"{method} {path}")
        try:
            async with self.http.request(
                method,
                url,
                headers=headers,
                data=body,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
            ) as resp:
                raw = await resp.read()
                # scrubbed before anything cuts it short: a venue echoing the key or the
                # secret in an error must not leave a prefix of it in a truncated message
                text = self.account.scrub(raw.decode(resp.charset or "utf-8", "replace"))
                return resp.status, resp.headers, text
        except (aiohttp.ClientError, TimeoutError, LookupError) as exc:
            msg = self.account.scrub(f"{method} {path}: {str(exc)[:160] or type(exc).__name__}")
            raise RetryableError(msg) from None

    async def call(
        self,
        method: str,
        make: Callable[[], tuple[str, dict[str, str], str | None]],
        *,
        weight: float = 1.0,
    ) -> str:
        """Build (``make`` signs with the current clock offset), send, classify; after a
        timestamp refusal resync the clock offset and try once more."""
        for attempt in range(2):
            url, headers, body = make()
            status, hdrs, text = await self.raw(
                method, url, headers=headers, body=body, weight=weight
            )
            err = self.classify(status, hdrs, text)
            if err is None:
                return text
            if isinstance(err, RateLimited | VenueUnavailable):
                self.budget.block(err.retry_after, self.clock.monotonic())
            if isinstance(err, TimestampRejected) and attempt == 0:
                log.info("keys.clock_resync", account=self.account.id)
                await self.resync()
                continue
            path = urlsplit(url).path
            if isinstance(err, KeyRejected | RateLimited | VenueUnavailable):
                err.args = (self.account.scrub(f"{method} {path}: {err}"),)
                raise err
            raise RetryableError(self.account.scrub(f"{method} {path}: {err}")) from None
        raise AssertionError("unreachable")


def private_venue(
    account: KeyAccount, clock: Clock, settings: KeySettings | None = None
) -> PrivateVenue:
    """The venue half (:class:`PrivateVenue`) for ``account``; also used by
    ``monitor check-keys`` to ask about a key without starting a feed."""
    settings = settings or KeySettings()
    if account.venue == BINANCE_USDM:
        from monitor.venues.binance.private import BinancePrivate  # noqa: PLC0415 (cycle)

        return BinancePrivate(account, clock, settings)
    if account.venue == BYBIT:
        from monitor.venues.bybit.private import BybitPrivate  # noqa: PLC0415 (cycle)

        return BybitPrivate(account, clock, settings)
    if account.venue == OKX:
        from monitor.venues.okx.private import OkxPrivate  # noqa: PLC0415 (cycle)

        return OkxPrivate(account, clock, settings)
    raise ValueError(f"no key feed for {account.venue!r}")  # KeyAccount refuses others


def build_key_feed(
    account: KeyAccount,
    clock: Clock | None = None,
    recorder: Recorder | None = None,
    settings: KeySettings | None = None,
) -> Feed:
    """The feed of one key account: a :class:`KeyFeed` around its venue's private API.

    ``account.venue`` must be one of :data:`KEY_VENUES`. Emits ``AccountSnapshot`` (and, on
    Binance, ``PositionUpdate``/``BalanceUpdate`` between snapshots) for
    ``(account.venue, account.name)`` and ``FeedStatus`` on channel ``account:{name}``."""
    clk = clock or SystemClock()
    settings = settings or KeySettings()
    return KeyFeed(private_venue(account, clk, settings), settings, clock=clk, recorder=recorder)


async def read_key_account(account: KeyAccount, clock: Clock | None = None) -> AccountSnapshot:
    """One checked REST snapshot of ``account`` (for ``monitor inspect venue:name --config``):
    the key's permissions are asked first. Raises :class:`NotReadOnly` (refused key),
    :class:`KeyRejected`, :class:`RateLimited`, :class:`VenueUnavailable` or
    :class:`RetryableError`; messages name the account and never contain a secret."""
    clk = clock or SystemClock()
    impl = private_venue(account, clk)
    try:
        why = (await impl.permissions()).refusal(account)
        if why is not None:
            raise NotReadOnly(why)
        return await impl.snapshot(clk.now())
    finally:
        await impl.aclose()
