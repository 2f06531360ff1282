"""What the Bybit and OKX API-key clients share (I/O): a venue whose REST answers are JSON
documents carrying their own error code, whose GETs are signed with an HMAC of a timestamp on
the venue's clock, and whose private stream is driven by :class:`~monitor.venues.keys.KeyFeed`.

* :func:`classify_answer`: the ladder from (HTTP status, the document's code) to the error it
  means, from a venue's table of codes (:class:`AnswerCodes`);
* :class:`SignedPrivate`: the client's construction (REST and stream URLs, the clock offset,
  the rate budget), the clock resync, the signed or public GET with its answer unwrapped, and
  the :class:`~monitor.venues.keys.PrivateVenue` calls these venues do not need
  (``keepalive``, ``close_stream``);
* :func:`retryable`: a malformed account document (:class:`~monitor.venues.parsing.Bad`) is
  a :class:`~monitor.errors.RetryableError` naming what was being read.

The request discipline itself (budget, ``Retry-After``, one retry after a clock resync, the
key scrubbed from errors) is :class:`~monitor.venues.keys.RestClient`'s; the stream loop is
``KeyFeed``'s. Each venue module keeps its signing, its document shapes and its stream
frames.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urlencode

from monitor.clock import Clock
from monitor.errors import RetryableError
from monitor.venues.keys import (
    ClockOffset,
    KeyAccount,
    KeyRejected,
    KeySettings,
    RateBudget,
    RateLimited,
    RestClient,
    TimestampRejected,
    VenueUnavailable,
    retry_after_seconds,
)
from monitor.venues.parsing import Bad

#: how much of a venue's message an error keeps (characters)
MAX_MESSAGE = 120


@dataclass(frozen=True, slots=True)
class AnswerCodes:
    """One venue's error codes (as text) and how its errors are named.

    ``label``: the code's field name as shown in errors (``retCode``, ``code``); ``ok``: the
    success code; ``timestamp``: the request's timestamp is outside the venue's window
    (resync the clock, retry once); ``auth``: the key, its signature or its IP is refused;
    ``rate`` (and the HTTP ``rate_statuses``): rate limited; ``busy``: maintenance or
    overload (like a 5xx)."""

    label: str
    ok: str
    timestamp: frozenset[str]
    auth: frozenset[str]
    rate: frozenset[str]
    busy: frozenset[str]
    rate_statuses: frozenset[int] = frozenset({429})


def classify_answer(
    status: int,
    headers: Any,
    code: str | None,
    msg: str,
    codes: AnswerCodes,
    *,
    rate_wait: Callable[[], float],
) -> Exception | None:
    """(HTTP ``status``, the document's ``code`` or None when it has none, its message) →
    None (success: 2xx and the ``ok`` code) or, first match wins: :class:`TimestampRejected`,
    :class:`KeyRejected` (HTTP 401 or an ``auth`` code), :class:`RateLimited` (a rate status
    or code; waits ``rate_wait()`` seconds), :class:`VenueUnavailable` (5xx or a ``busy``
    code; waits ``Retry-After`` or 30 s), else :class:`RetryableError`."""
    if 200 <= status < 300 and code == codes.ok:
        return None
    what = f"HTTP {status} {codes.label} {code} {msg}"
    if code in codes.timestamp:
        return TimestampRejected(f"{code} {msg}")
    if status == 401 or code in codes.auth:
        return KeyRejected(what)
    if status in codes.rate_statuses or code in codes.rate:
        return RateLimited(what, rate_wait())
    if status >= 500 or code in codes.busy:
        return VenueUnavailable(what, retry_after_seconds(headers, 30.0))
    return RetryableError(what)


@contextlib.contextmanager
def retryable(what: str) -> Iterator[None]:
    """A :class:`Bad` document inside becomes ``RetryableError("<what>: <reason>")``: the
    account is re-read later, never half-taken."""
    try:
        yield
    except Bad as exc:
        raise RetryableError(f"{what}: {exc.args[0]}") from None


class SignedPrivate:
    """The shared half of a venue's :class:`~monitor.venues.keys.PrivateVenue` (see the
    module docstring). A venue sets the class attributes and implements :meth:`classify`,
    :meth:`server_ms`, :meth:`sign` and :meth:`unwrap`, then its own ``permissions``,
    ``snapshot``, ``on_open`` and ``parse``."""

    heartbeat_message: str | None = None
    keepalive_interval: float | None = None
    max_lifetime: float | None = None

    #: the default REST base and private stream URLs (an account may override them)
    REST_URL: ClassVar[str]
    WS_URL: ClassVar[str]
    #: the public endpoint giving the venue's time (for the clock offset)
    TIME_PATH: ClassVar[str]
    #: the rate budget: this many requests per this many seconds
    BUDGET: ClassVar[tuple[float, float]]

    def __init__(self, account: KeyAccount, clock: Clock, settings: KeySettings) -> None:
        self.account = account
        self.clock = clock
        self.settings = settings
        self.base = (account.rest_url or self.REST_URL).rstrip("/")
        self.ws_url = account.ws_url or self.WS_URL
        self.offset = ClockOffset()
        self.rest = RestClient(
            account, clock, RateBudget(*self.BUDGET), self.classify, self.resync_clock
        )

    # -- what a venue implements -----------------------------------------------------------------
    def classify(self, status: int, headers: Any, body: str) -> Exception | None:
        """The venue's answer → None (success) or the error it means."""
        raise NotImplementedError

    def server_ms(self, body: str) -> float:
        """The venue's time (ms since the epoch) in the answer of ``TIME_PATH``; raises
        ``ValueError``, ``KeyError``, ``TypeError`` or ``IndexError`` when it has none."""
        raise NotImplementedError

    def sign(self, path: str, query: str) -> dict[str, str]:
        """The headers of a signed GET of ``path`` with ``query`` (urlencoded, may be "")."""
        raise NotImplementedError

    def unwrap(self, doc: Any, path: str) -> Any:
        """The payload of a successful answer document (raises :class:`Bad`)."""
        raise NotImplementedError

    # -- shared ------------------------------------------------------------------------------------
    async def resync_clock(self) -> None:
        """Measure the venue clock's offset from ``TIME_PATH`` (public, unsigned)."""
        sent = self.clock.now()
        status, headers, body = await self.rest.raw("GET", f"{self.base}{self.TIME_PATH}")
        err = self.classify(status, headers, body)
        if err is not None:
            raise err
        try:
            server_ms = self.server_ms(body)
        except (ValueError, KeyError, TypeError, IndexError):
            raise RetryableError(f"GET {self.TIME_PATH}: no server time") from None
        self.offset.update(server_ms, sent, self.clock.now())

    async def get(self, path: str, params: dict[str, str], *, signed: bool = True) -> Any:
        """GET ``path`` with ``params`` (signed with the current clock offset unless
        ``signed`` is False: public endpoints) through the rate budget; the unwrapped payload.
        Errors: those of :meth:`classify`; an answer that is not the expected document is a
        :class:`RetryableError`."""
        query = urlencode(params)
        url = f"{self.base}{path}?{query}" if query else f"{self.base}{path}"

        def make() -> tuple[str, dict[str, str], str | None]:
            return url, (self.sign(path, query) if signed else {}), None

        text = await self.rest.call("GET", make)
        try:
            return self.unwrap(json.loads(text), path)
        except (ValueError, Bad) as exc:
            raise RetryableError(f"{path}: {str(exc)[:MAX_MESSAGE]}") from None

    async def stream_url(self) -> str:
        return self.ws_url

    async def keepalive(self) -> str | None:
        return None

    async def close_stream(self) -> None:
        return None

    async def aclose(self) -> None:
        await self.rest.aclose()


__all__ = ["MAX_MESSAGE", "AnswerCodes", "SignedPrivate", "classify_answer", "retryable"]
