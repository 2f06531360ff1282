"""Logging: structlog for our own lines, the same processors for every library's.

One line per event. On a terminal, structlog's ``ConsoleRenderer``; otherwise (journald, a
pipe, a file) one JSON object per line on stdout (under journald prefixed with the syslog
priority, ``<4>{...}``, which journald strips and files the line under)::

    {"event": "feed.connected", "venue": "hyperliquid", "level": "info",
     "timestamp": "2026-05-01T12:00:00.123456Z"}

The chain: ``merge_contextvars`` (context bound per venue/account/scope), ``add_log_level``,
``TimeStamper(iso, utc)``, exception rendering (``dict_tracebacks`` in JSON: an ``exception``
list; the console renderer prints tracebacks itself), then :func:`redact`, then
:class:`ControlEscaper`, then the renderer.
The standard library's root logger (websockets, ccxt, apprise, aiosqlite) is routed through
``structlog.stdlib.ProcessorFormatter`` with the same processors plus a ``logger`` key naming
the library.

Redaction masks, in every string value (nested too; exceptions, bytes and sets as the text
they are written as): Telegram-style
bot tokens (``123456:AA…``), the password in ``scheme://user:password@host`` URLs
(:func:`mask_url_passwords`: any characters, ``?#/@:`` and blanks too, failing closed; the
host shown when an ``@`` in the path or query follows it; the user of ``alice://pw@host``
under an uncommon scheme) and in a ``user:password@host`` written without a scheme
(:func:`mask_userinfo`: a password of any length and characters but blanks, failing closed;
e-mail fields ``to:bob@example.com``, Hyperliquid ``0x…@dex`` accounts, IPv6 addresses, scope
keys and transition ids are left whole), apprise's privacy marks
of a token inside a URL (``tgram://1...9/``, ``...abcd``: a token's first and last or last
four characters, in apprise's own debug lines), the values of keys named
like ``password``/``token``/``secret``, and every string passed to :func:`register_secret`.

Control characters are neutralised in every string value (nested values, dict keys and
exception texts too), in JSON and on the console alike, after redaction: a venue-chosen
string (a HIP-3 coin name, an error frame, a symbol) can carry ``ESC [2J``, a carriage
return that overwrites the line on a terminal, a newline that forges a log line, a C1
``CSI`` (U+009B) or a bidi override (U+202E) that reorders what ``journalctl`` shows. Each
is written as its Python escape instead (:func:`escape_controls`: ``\\x1b``, ``\\n``,
``\\u202e``), so the line stays one line and the terminal shows, never obeys, it. The one
exception: the console's multi-line traceback (``exception``/``stack``) keeps its line breaks.

Each line is written and flushed at once (journald gets it while the daemon idles), under a
lock per stream so lines never interleave; only within :func:`burst` (a run of lines written
together, e.g. a step's ``alert.fired`` lines) do our lines wait in the stream's buffer, flushed
once as the burst ends, an exception too.

The level can change at runtime (``set_level``, e.g. on SIGHUP): the filter is a processor that
reads the current level. Loggers are not cached on first use, so a later ``configure_logging``
(or ``structlog.testing.capture_logs`` in a test) applies to module-level loggers too.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import threading
import weakref
from collections.abc import Mapping
from contextvars import ContextVar, Token
from types import TracebackType
from typing import IO, Any, Final, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

LEVELS: Final[dict[str, int]] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}
FORMATS: Final[tuple[str, ...]] = ("auto", "json", "console")
MASK: Final = "***"

#: what :func:`escape_controls` neutralises: C0 controls and DEL, C1 controls (U+0080-U+009F,
#: CSI U+009B among them), the Arabic letter mark and the bidi marks, embeddings, overrides
#: and isolates (Trojan Source), the Unicode line and paragraph separators, and lone
#: surrogates (which no UTF-8 stream can write: a strict stream would raise)
_CONTROL: Final = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff]"
)
_CONTROL_NO_LF: Final = re.compile(
    "[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff]"
)
_NAMED: Final = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escape(m: re.Match[str]) -> str:
    c = m.group()
    named = _NAMED.get(c)
    if named is not None:
        return named
    n = ord(c)
    return f"\\x{n:02x}" if n <= 0xFF else f"\\u{n:04x}"


def escape_controls(text: str, *, keep_newlines: bool = False) -> str:
    """``text`` with every control character written as its Python escape (``"\\x1b"``,
    ``"\\n"``, ``"\\u202e"``; see :data:`_CONTROL`). Text without any is returned as is
    (the common case: printable ASCII, two string methods; else one regex search).
    ``keep_newlines``: leave ``\\n`` alone (a traceback's line breaks)."""
    if text.isascii() and text.isprintable():
        return text  # _CONTROL's only ASCII characters, C0 and DEL, are all unprintable
    pattern = _CONTROL_NO_LF if keep_newlines else _CONTROL
    if pattern.search(text) is None:
        return text
    return pattern.sub(_escape, text)


_BOT_TOKEN = re.compile(r"\b\d+:[A-Za-z0-9_-]{30,}")
#: the shortest text :data:`_BOT_TOKEN` matches: a digit, ``:`` and 30 characters
_BOT_TOKEN_MIN: Final = 32
#: a URL's user after ``://``: up to its ``:`` (a password follows) or ``@`` (none does)
_URL_USER: Final = re.compile(r"[^\s:/@?#\[]*")
#: the characters of a scheme, read back from ``://`` (at most :data:`_SCHEME_MAX`)
_SCHEME_CHARS: Final = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-"
)
_SCHEME_MAX: Final = 64
#: schemes whose ``scheme://user@host`` shows its user (a URL's user, not a password typed
#: after a ``user:``: ``alice://pw@host`` is masked, ``https://bob@host`` is not)
_URL_SCHEMES: Final = frozenset(
    {
        "http", "https", "ws", "wss", "ftp", "ftps", "sftp", "ssh", "git", "smtp", "smtps",
        "imap", "imaps", "pop3", "pop3s", "mailto", "mailtos", "redis", "rediss", "postgres",
        "postgresql", "mysql", "mongodb", "amqp", "amqps", "mqtt", "mqtts", "ldap", "ldaps",
        "socks4", "socks5", "socks5h", "file",
    }
)  # fmt: skip
#: a port, then a path, query, fragment, blank or the end: ``host:443/ws``, ``host:8080 and``
_URL_PORT: Final = re.compile(r"\d{1,5}(?:[/?#\s]|\Z)")
#: what ends the stretch after a URL's ``@``: a path, a query, a fragment or another ``@``
_STRETCH_END: Final = re.compile(r"[/?#@]")
_BLANK: Final = re.compile(r"\s")
#: apprise's privacy marks of a token in a URL (its ``url(privacy=True)``, in its own log
#: lines): ``X...Y`` (the first and last characters) and ``...WXYZ`` (the last four), each a
#: whole part between URL separators
_PRIVACY_MARK = re.compile(
    r"(?<=[/@:=])(?:[^\s/@:?&=#.]\.\.\.[^\s/@:?&=#.]|\.\.\.[^\s/@:?&=#.]{1,4})"
    r"(?=[\s/@:?&=#]|\Z)"
)
_SECRET_KEY = re.compile(r"(?i)(password|passwd|secret|token|api_?key|credential)")
#: a word (a run of non-blanks) with a ``:`` before an ``@``: where a ``user:password@host``
#: written without a scheme can be (an SMTP host string ``alice:hunter2@smtp.example.com:587``,
#: a library's error text). Anchored at a word's start (``(?<!\S)``), so each word is read
#: once: linear in the text.
_AT_WORD: Final = re.compile(r"(?<!\S)[^\s:]*:\S*@\S*")
#: a user: a run of ``[\w.~%+-]`` that starts a word or follows a character outside it and
#: ``:`` (not after a ``:``: ``a:b:c@h`` is user ``a``, password ``b:c``)
_USER: Final = re.compile(r"(?<![\w.~%+:-])[\w.~%+-]+:")
#: a URL's userinfo as :func:`mask_url_passwords` leaves it (``user``, ``user:***``)
_USERINFO: Final = re.compile(r"[^\s/@?#\[]*")
_USERINFO_MAX: Final = 256
#: an IPv6 address (``fe80::1``, ``2001:db8::1``): a ``::`` after it is no password's start
_IPV6ISH: Final = re.compile(r"[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{0,4}){2,7}")
#: a time or an ISO timestamp at a user's start (``12:30:01@``, ``2026-11-30T12:30:01Z@``)
_TIME: Final = re.compile(r"(?:\d{4}-\d\d-\d\d[T ])?\d{1,2}:\d\d")
#: e-mail field words: ``to:bob@example.com`` is a recipient, not user ``to`` with password
#: ``bob`` (only when what follows is an address's local part, without ``:`` or ``@``)
_ADDRESS_WORDS: Final = frozenset({"mailto", "to", "cc", "bcc", "from", "reply-to", "sender"})
_LOCAL_PART: Final = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]{1,64}")
#: a port then a path or a query: ``host:443/ws/btcusdt@markPrice``, ``localhost:25?from=a@b``
_PORT_THEN_PATH: Final = re.compile(r"\d{1,5}[/?]")
#: what may follow the ``@`` of a credential: its host (a name, an IPv4 or ``[IPv6]``)
_HOST_START: Final = re.compile(r"[\w\[]")
#: the characters that end a host: ``/`` starts a path, ``?`` a query, ``#`` a fragment
_AFTER_HOST: Final = re.compile(r"[/?#]")
#: a Hyperliquid address (or its short form ``0x1111…1111``) right after a ``:``, before the
#: ``@`` of its dex: ``hyperliquid:0x…@xyz``, ``clearinghouseState:0x…@xyz``
_HL_TAIL: Final = re.compile("0[xX][0-9a-fA-F]*(?:\u2026[0-9a-fA-F]*)?")
_HL_TAIL_MAX: Final = 128
#: a scope before the ``@`` of a Hyperliquid spot symbol (``@107``): ``…/cross#@107``,
#: ``…/isolated:@107``, ``…/isolated:X#@107``
_SCOPE_TAIL: Final = re.compile(r"/(?:(?:cross|venue-ratio|isolated:[^\s/#]*)#|isolated:)")
_SCOPE_TAIL_MAX: Final = 256
_HEX_OR_ELLIPSIS: Final = frozenset("0123456789abcdefABCDEFxX\u2026")


def _url_password_end(text: str, start: int, stop: int) -> int:
    """The index of the ``@`` in ``text[start:stop]`` that ends a URL's password, or -1.

    Left to right over the ``@`` a host may follow (a word character or ``[``): the first
    one whose host (the stretch to the next ``/``, ``?``, ``#`` or the end, without an ``@``)
    reads as a host name, an address or ``localhost`` (:func:`_looks_like_host`) ends it, and
    the ``@`` after it are its path's or query's (``…:pw@smtp.gmail.com:587/?from=a@b.com``);
    else the last (``p@ss@host/x``, ``a@b/c@host``: a password holding an ``@`` is masked
    whole). Each character is read a bounded number of times."""
    found = -1
    i = text.find("@", start, stop)
    while i >= 0:
        m = _STRETCH_END.search(text, i + 1, stop)
        end = m.start() if m is not None else stop
        if end < stop and text[end] == "@":
            i = end  # this '@' is the password's: the next one may end it
            continue
        if end > i + 1 and _HOST_START.match(text, i + 1):
            found = i
            dot = max(text.rfind(".", i + 1, end), text.rfind(":", i + 1, end))
            if _looks_like_host(text, i + 1, end, dot):
                return i
        i = text.find("@", end, stop)
    return found


def _scheme_before(text: str, sep: int) -> str:
    """The scheme before the ``://`` at ``sep`` (at most :data:`_SCHEME_MAX` characters)."""
    k = sep
    while k > 0 and sep - k < _SCHEME_MAX and text[k - 1] in _SCHEME_CHARS:
        k -= 1
    return text[k:sep]


def mask_url_passwords(text: str) -> str:
    """``text`` with the password of each ``scheme://user:password@host`` masked
    (``https://alice:***@host/x``), and the user of a ``scheme://user@host`` whose scheme is
    no common one (:data:`_URL_SCHEMES`: ``alice://pw@host`` is a user ``alice`` and a
    password ``//pw`` as much as a URL; the password after a user that is an e-mail address,
    its ``@`` unencoded: ``smtps://alice@example.com:***@host/``). Fails closed: the password
    is any text, ``/?#@:`` and blanks too (a passphrase), up to the ``@``
    :func:`_url_password_end` finds in its word (its last ``@`` when no host follows any:
    ``smtp://alice:pw@:587``), or, when that word holds none and is no port (``host:8080
    and …``), in the first later word of the line that holds an ``@``. Not a password: a
    port after a host name (``host.example.com:443/ws/btcusdt@markPrice``; a port after a
    bare word such as ``alice:2024/pw@host`` is masked). Each URL is read up to the next
    ``://`` at most, so the scan is linear in ``len(text)``."""
    out: list[str] = []
    pos = 0  # text[:pos] is written to out
    sep = text.find("://")
    while sep >= 0:
        user = _URL_USER.match(text, sep + 3)
        assert user is not None  # the pattern matches the empty string
        at = user.end()
        # the next URL; not a '://' right after the user: a password starting with '//'
        nxt = text.find("://", at + 1)
        limit = len(text) if nxt < 0 else nxt
        if sep < pos or at >= limit:
            sep = nxt
            continue
        if text[at] == "@":
            if user.end() > user.start() and (
                _scheme_before(text, sep).casefold() not in _URL_SCHEMES
            ):
                out += (text[pos : user.start()], MASK)
                pos = at
            # an e-mail address typed as the user (``smtps://alice@example.com:pw@host/``):
            # the password follows its domain's ':' (a host's port is told apart as below)
            domain = _URL_USER.match(text, at + 1)
            assert domain is not None
            colon = domain.end()
            if domain.start() < colon < limit and text[colon] == ":":
                begin = colon + 1
                end = _url_password_from(text, begin, limit, text[domain.start() : colon])
                if end >= 0:
                    out += (text[pos:begin], MASK)
                    pos = end
            sep = nxt
            continue
        if text[at] != ":":
            sep = nxt
            continue
        begin = at + 1
        end = _url_password_from(text, begin, limit, text[user.start() : at])
        if end >= 0:
            out += (text[pos:begin], MASK)
            pos = end
        sep = nxt
    if not out:
        return text
    out.append(text[pos:])
    return "".join(out)


def _url_password_from(text: str, begin: int, limit: int, user: str) -> int:
    """The index of the ``@`` ending the password that starts at ``begin`` (the URL's user
    ``user``; the next URL at ``limit``), or -1 (see :func:`mask_url_passwords`)."""
    blank = _BLANK.search(text, begin, limit)
    word_end = blank.start() if blank is not None else limit
    port = _URL_PORT.match(text, begin, limit)
    if port is not None and ("." in user or user.casefold() == "localhost"):
        return -1  # host.example.com:443/…: a host and its port
    end = _url_password_end(text, begin, word_end)
    if end < 0:
        # no host after any '@' of its word (an empty host: ``smtp://alice:pw@:587``, a
        # ``${HOST}`` left empty): its last '@' ends the password all the same
        end = text.rfind("@", begin, word_end)
    if end >= 0 or blank is None or word_end == begin or port is not None:
        return end
    # a password holding blanks: the first later word of the line holding an '@'
    line = text.find("\n", word_end, limit)
    stop = limit if line < 0 else line
    i = text.find("@", word_end, stop)
    while i >= 0:
        after = _BLANK.search(text, i, stop)
        end = _url_password_end(text, i, after.start() if after is not None else stop)
        if end >= 0:
            return end
        if after is None:
            return -1
        i = text.find("@", after.start(), stop)
    return -1


def _credential_at(word: str) -> int:
    """The index of the ``@`` of ``word`` that ends a credential's password, or -1: the last
    ``@`` a credential's host may follow, not counting those in the query or fragment of an
    earlier one whose host reads as a host name (``…@smtp.example.com:587?to=bob@example.com``
    ends at the first ``@``).

    Not such an ``@`` (a name's, never a credential's): one without a host character after
    it; one whose host has a path after it (the first ``/``, ``?`` or ``#`` after it is a
    ``/``: without a scheme a credential has no path, a name has one: ``bybit:ops@desk/cross``,
    a transition id ``…@1777636801.000000/fired``); one after ``:0x…`` (a Hyperliquid
    ``0x…@dex`` account); one after a scope and ``#`` or after ``/isolated:`` (a Hyperliquid
    spot symbol ``@107`` in a position key). Left to right, each character read a bounded
    number of times."""
    found = -1
    end = len(word)
    sep = -1  # the index of the first /?# after the current '@' (end: none)
    i = word.find("@")
    dot = -1  # the last '.' or ':' before ``sep`` (after the first '@' that found it)
    while 0 <= i < end:
        if sep <= i:
            m = _AFTER_HOST.search(word, i + 1)
            sep = m.start() if m is not None else len(word)
            dot = max(word.rfind(".", i + 1, sep), word.rfind(":", i + 1, sep))
        after = word[sep] if sep < len(word) else ""
        if after != "/" and _HOST_START.match(word, i + 1) and not _name_before(word, i):
            found = i
            if after and end != sep and _looks_like_host(word, i + 1, sep, dot):
                end = sep  # the '@'s of its query or fragment end no password
        i = word.find("@", i + 1, end)
    return found


def _looks_like_host(word: str, start: int, stop: int, dot: int) -> bool:
    """Whether ``word[start:stop]`` is a host name, an address or a port:
    ``smtp.example.com``, ``localhost``, ``h:587``, ``[::1]``. ``dot``: the index of the
    last ``.`` or ``:`` before ``stop`` (-1: none), so that the text is not read again for
    each ``@`` of one stretch (which made a word of many ``@`` quadratic)."""
    return (
        dot >= start
        or word.startswith("[", start)
        or (stop - start == 9 and word[start:stop].casefold() == "localhost")
    )


def _name_before(word: str, at: int) -> bool:
    """Whether the ``@`` at ``at`` ends a Hyperliquid address or a position key's scope (see
    :func:`_credential_at`); looks back a bounded distance."""
    if at == 0:
        return False
    c = word[at - 1]
    if c in _HEX_OR_ELLIPSIS:
        k = word.rfind(":", max(0, at - _HL_TAIL_MAX), at)
        if k >= 0 and _HL_TAIL.fullmatch(word, k + 1, at):
            return True
    if c in "#:":
        k = word.rfind("/", max(0, at - _SCOPE_TAIL_MAX), at)
        if k >= 0 and _SCOPE_TAIL.fullmatch(word, k, at):
            return True
    return False


def _not_a_password(word: str, start: int, colon: int, at: int) -> bool:
    """Whether ``word[colon:at]``, after the user ``word[start:colon - 1]``, is no password:
    empty; after a time (``12:30:01@``); starting with ``:`` in an IPv6 address (``fe80::1``;
    ``alice::pw@host`` is a password); starting with ``//`` (a scheme's ``https://…``) or
    after ``://`` (a URL's user): :func:`mask_url_passwords` reads URLs; an e-mail address's
    local part after an e-mail field word (``to:bob@example.com``, ``mailto:``); a port and a
    path or query after a host name (``fstream.binance.com:443/ws/btcusdt@markPrice``,
    ``localhost:25?from=a@b``; not after an ``@``: ``bob@example.com:2024/pw@smtp`` is a
    credential, unless that ``@`` ends a URL's userinfo: :func:`_url_host`)."""
    if colon == at or _TIME.match(word, start):
        return True
    if word[colon] == ":" and _IPV6ISH.fullmatch(word, start, at):
        return True
    if word.startswith("//", colon) or (start >= 3 and word.startswith("://", start - 3)):
        # a URL's scheme, or a user after it: :func:`mask_url_passwords` reads those
        return True
    user = word[start : colon - 1]
    if user.casefold() in _ADDRESS_WORDS and _LOCAL_PART.fullmatch(word, colon, at):
        return True
    return (
        _PORT_THEN_PATH.match(word, colon, at) is not None
        and ("." in user or user.casefold() == "localhost")
        and (start == 0 or word[start - 1] != "@" or _url_host(word, start))
    )


def _url_host(word: str, start: int) -> bool:
    """Whether ``word[start:]`` follows the ``@`` that ends a URL's userinfo (``://user@``,
    ``://user:***@``, a password without ``/``): it is the URL's host, not a user. Looks
    back at most :data:`_USERINFO_MAX` characters."""
    k = word.rfind("://", max(0, start - _USERINFO_MAX), start - 1)
    return k >= 0 and _USERINFO.fullmatch(word, k + 3, start - 1) is not None


def _mask_word(m: re.Match[str]) -> str:
    word = m.group()
    at = _credential_at(word)
    if at < 0:
        return word
    for user in _USER.finditer(word, 0, at):
        if not _not_a_password(word, user.start(), user.end(), at):
            return word[: user.end()] + MASK + word[at:]
    return word


def mask_userinfo(text: str) -> str:
    """``text`` with the password of each ``user:password@host`` written without a scheme
    masked (``alice:***@smtp.example.com:587``). Fails closed: the password is everything
    between the first user's ``:`` and the word's last ``@`` that a host follows (any length,
    any character but a blank: ``/?#[]@:`` too). Not a password (left whole): what
    :func:`_credential_at` and :func:`_not_a_password` say is a name, a time, an e-mail
    field or a host and port. Linear in ``len(text)``: each word is found once by
    :data:`_AT_WORD`, its ``@`` read left to right with bounded look-backs, its users left
    to right with bounded or disjoint checks."""
    return _AT_WORD.sub(_mask_word, text)


#: values that no processor changes (exactly these types: a subclass may render otherwise)
_SCALARS: Final = frozenset({int, float, bool})
#: key name → whether it names a secret (key names are the code's own: few, and reused on
#: every line; the cache stops growing at :data:`_KEY_CACHE_MAX` names)
_SECRET_KEYS: dict[str, bool] = {}
_KEY_CACHE_MAX: Final = 4096


def _secret_key(key: str) -> bool:
    """Whether the key ``key`` names a secret (``password``, ``api_key``, ``token``...)."""
    found = _SECRET_KEYS.get(key)
    if found is None:
        found = _SECRET_KEY.search(key) is not None
        if len(_SECRET_KEYS) < _KEY_CACHE_MAX:
            _SECRET_KEYS[key] = found
    return found


_METHOD_LEVELS: Final[dict[str, int]] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "msg": logging.INFO,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "exception": logging.ERROR,
    "critical": logging.CRITICAL,
    "fatal": logging.CRITICAL,
}


class Redactor:
    """Masks secrets in strings; holds the registered secret values (never logged)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._secrets: tuple[str, ...] = ()

    def register(self, value: str) -> None:
        if not value:
            return
        with self._lock:
            if value not in self._secrets:
                # longest first, so a secret containing another is masked whole
                self._secrets = tuple(sorted((*self._secrets, value), key=len, reverse=True))

    def clear(self) -> None:
        with self._lock:
            self._secrets = ()

    def text(self, value: str) -> str:
        for secret in self._secrets:
            if secret in value:
                value = value.replace(secret, MASK)
        # every pattern needs a colon, the URL one "://", the user:password one "@" (and MASK
        # holds none of them): most log strings (event names, levels, severities) skip the
        # regexes
        if ":" not in value:
            return value
        if len(value) >= _BOT_TOKEN_MIN:  # a timestamp (27 characters) skips it
            value = _BOT_TOKEN.sub(MASK, value)
        if "://" in value:
            value = mask_url_passwords(value)
            if "..." in value:
                value = _PRIVACY_MARK.sub(MASK, value)
        if "@" not in value:
            return value
        return mask_userinfo(value)

    def value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: self._item(k, v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self.value(v) for v in value)
        if isinstance(value, BaseException | bytes | bytearray | set | frozenset):
            # the renderers write these as their repr (JSON's fallback, the console's repr):
            # the same text, masked
            return self.text(repr(value))
        return value

    def _item(self, key: object, value: Any) -> Any:
        if (
            isinstance(key, str)
            and _secret_key(key)
            and isinstance(value, str | bytes | bytearray)
            and value
        ):
            return MASK
        return self.value(value)

    def __call__(self, logger: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
        secrets = self._secrets
        # values are replaced, keys never added or removed: iterating the dict itself is safe
        for key, value in event_dict.items():
            kind = type(value)
            if kind is str:  # the common case, inline (what _item does for a plain str)
                if not value or key.startswith("_"):
                    continue  # "" stays ""; ProcessorFormatter's _record/_from_structlog
                if _secret_key(key):
                    event_dict[key] = MASK
                elif secrets or ":" in value:  # else text() returns it as it is
                    event_dict[key] = self.text(value)
            elif value is not None and kind not in _SCALARS and not key.startswith("_"):
                event_dict[key] = self._item(key, value)  # scalars pass as they are
        return event_dict


#: the process's one redactor: secrets registered anywhere are masked in every log line
_REDACTOR = Redactor()


def register_secret(value: str) -> None:
    """Mask ``value`` wherever it appears in a log line from now on (empty: ignored)."""
    _REDACTOR.register(value)


def redact(text: str) -> str:
    """``text`` with every known secret and secret-looking pattern masked (for echoing URLs
    or errors to a terminal, too)."""
    return _REDACTOR.text(text)


class ControlEscaper:
    """The processor that neutralises control characters (see the module docstring) in every
    string value of an event, nested dicts, lists and tuples included (their string keys
    too). ``keep_lines``: keys whose line breaks stay (the console's ``exception`` and
    ``stack``, which its renderer prints as multi-line blocks)."""

    def __init__(self, keep_lines: frozenset[str] = frozenset()) -> None:
        self.keep_lines = keep_lines

    def value(self, value: Any, *, keep_newlines: bool = False) -> Any:
        if isinstance(value, str):
            return escape_controls(value, keep_newlines=keep_newlines)
        if isinstance(value, dict):
            return {
                (escape_controls(k) if isinstance(k, str) else k): self.value(v)
                for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return type(value)(self.value(v) for v in value)
        return value

    def __call__(self, logger: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
        # printable ASCII (two string methods) holds no control character (escape_controls)
        moved = False
        for key, seen in list(event_dict.items()):
            if key.startswith("_"):
                continue  # ProcessorFormatter's _record/_from_structlog
            # a key escaped earlier may have landed on this one: then it is read anew
            value = event_dict[key] if moved else seen
            kind = type(value)
            if kind is str:  # the common case, inline (what value() does for a plain str)
                if not (value.isascii() and value.isprintable()):
                    pattern = _CONTROL_NO_LF if key in self.keep_lines else _CONTROL
                    if pattern.search(value) is not None:
                        event_dict[key] = pattern.sub(_escape, value)
            elif value is not None and kind not in _SCALARS:  # scalars pass as they are
                event_dict[key] = self.value(value, keep_newlines=key in self.keep_lines)
            escaped = escape_controls(key)  # the key itself when it holds no control
            if escaped is not key:
                event_dict[escaped] = event_dict.pop(key)
                moved = True
        return event_dict


class _LevelFilter:
    """Drops events below the current level; ``level`` may change at any time."""

    def __init__(self, level: int) -> None:
        self.level = level

    def __call__(self, logger: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
        if _METHOD_LEVELS.get(method, logging.INFO) < self.level:
            raise structlog.DropEvent
        return event_dict


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """Our root handler, told apart from handlers others (pytest) install."""


_FILTER = _LevelFilter(logging.INFO)


def parse_level(level: str) -> int:
    try:
        return LEVELS[level.lower()]
    except KeyError:
        raise ValueError(f"unknown log level {level!r} (one of {', '.join(LEVELS)})") from None


def _use_console(fmt: str, stream: TextIO) -> bool:
    if fmt not in FORMATS:
        raise ValueError(f"unknown log format {fmt!r} (one of {', '.join(FORMATS)})")
    if fmt == "auto":
        isatty = getattr(stream, "isatty", None)
        return bool(isatty()) if callable(isatty) else False
    return fmt == "console"


#: syslog priorities of our levels, for journald's ``SyslogLevelPrefix=`` (``<3>{...}``)
_SYSLOG: Final[dict[str, int]] = {
    "debug": 7,
    "info": 6,
    "warning": 4,
    "error": 3,
    "critical": 2,
}


class _JSONRenderer(structlog.processors.JSONRenderer):
    """structlog's ``JSONRenderer(sort_keys=False)`` (``json.dumps`` with its fallback for
    other objects), its encoder made once instead of per line: the same text."""

    def __init__(self) -> None:
        super().__init__(sort_keys=False)
        self._encoder = json.JSONEncoder(**self._dumps_kw)

    def __call__(self, logger: WrappedLogger, name: str, event_dict: EventDict) -> str:
        return self._encoder.encode(event_dict)


class _JournalPrefix:
    """Wraps a renderer: ``<N>`` before each line so journald files it at that priority
    (``journalctl -p warning``); journald strips the prefix, ``-o cat`` shows the JSON."""

    def __init__(self, renderer: Processor) -> None:
        self.renderer = renderer

    def __call__(self, logger: WrappedLogger, method: str, event_dict: EventDict) -> str:
        level = str(event_dict.get("level", method))
        line = self.renderer(logger, method, event_dict)
        text = line.decode() if isinstance(line, bytes) else str(line)
        return f"<{_SYSLOG.get(level, 6)}>{text}"


#: the lock of each stream our lines go to (as structlog's ``WriteLogger`` keeps one): the
#: loggers of every configuration writing to one stream share it, so lines never interleave
_STREAM_LOCKS: weakref.WeakKeyDictionary[IO[Any], threading.Lock] = weakref.WeakKeyDictionary()
_STREAM_LOCKS_LOCK: Final = threading.Lock()


def _stream_lock(stream: IO[Any]) -> threading.Lock:
    with _STREAM_LOCKS_LOCK:
        lock = _STREAM_LOCKS.get(stream)
        if lock is None:
            lock = _STREAM_LOCKS[stream] = threading.Lock()
        return lock


class Burst:
    """A run of log lines flushed once, at its end (made by :func:`burst`).

    While it is open, the lines our loggers write from the thread that opened it, in its
    context (the code inside the ``with`` and tasks started there), are written to their
    stream without a flush; its exit flushes each stream written to, once, also when the body
    raises (the body's exception propagates; a flush's error is raised when the body raised
    none). Lines from other threads and from other tasks' contexts are flushed at once, as
    outside a burst. A burst opened inside an open one adds nothing: the outer one flushes.
    Meant for a synchronous run of lines: lines wait in the buffer until the exit, so the
    body must not ``await`` (the daemon could idle with them unwritten)."""

    __slots__ = ("_streams", "_token", "open", "owner")

    def __init__(self) -> None:
        self.open = False
        self.owner = 0
        self._token: Token[Burst | None] | None = None
        #: id(stream) -> stream: the streams written to without a flush
        self._streams: dict[int, IO[Any]] = {}

    def defer(self, stream: IO[Any]) -> None:
        """Note that a line was written to ``stream`` unflushed (its exit flushes it)."""
        self._streams[id(stream)] = stream

    def __enter__(self) -> Burst:
        current = _BURST.get()
        if current is not None and current.open and current.owner == threading.get_ident():
            return self  # nested: the outer burst flushes
        self.open = True
        self.owner = threading.get_ident()
        self._token = _BURST.set(self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        token = self._token
        if token is None:
            return
        self.open = False
        self._token = None
        try:
            _BURST.reset(token)
        except ValueError:  # exited in another context than it was entered in
            _BURST.set(None)
        streams, self._streams = list(self._streams.values()), {}
        error: Exception | None = None
        for stream in streams:
            try:
                with _stream_lock(stream):
                    stream.flush()
            except Exception as e:  # the other streams are flushed all the same
                error = error or e
        if error is not None and exc_type is None:
            raise error


#: the burst open in this context, if any
_BURST: ContextVar[Burst | None] = ContextVar("monitor_logs_burst", default=None)


def burst() -> Burst:
    """A context manager under which our log lines are flushed once, at its end::

        with logs.burst():
            for t in step.transitions:
                info("alert.fired", key=t.key, ...)

    The same text as without it (see :class:`Burst`); only the flushes (a write system call
    each) are saved: one per burst instead of one per line."""
    return Burst()


class LineLogger:
    """structlog's ``WriteLogger``: writes each rendered line and a newline to ``stream`` under
    the stream's lock, and flushes it, unless an open :func:`burst` of this thread and
    context defers the flush to its end."""

    __slots__ = ("_flush", "_lock", "_stream", "_write")

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._write = stream.write
        self._flush = stream.flush
        self._lock = _stream_lock(stream)

    def __repr__(self) -> str:
        return f"<LineLogger(stream={self._stream!r})>"

    def msg(self, message: str) -> None:
        with self._lock:
            self._write(message + "\n")
            current = _BURST.get()
            if current is None or not current.open or current.owner != threading.get_ident():
                self._flush()
            else:
                current.defer(self._stream)

    log = debug = info = warn = warning = msg
    fatal = failure = err = error = critical = exception = msg


class LineLoggerFactory:
    """structlog's ``logger_factory`` making :class:`LineLogger` on ``stream`` (positional
    arguments, the logger name structlog passes, are ignored)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def __call__(self, *args: Any) -> LineLogger:
        return LineLogger(self.stream)


def on_journal(stream: TextIO, env: Mapping[str, str] | None = None) -> bool:
    """True when ``stream`` is the journal connection systemd names in ``$JOURNAL_STREAM``
    (``device:inode``; compared, not just tested for presence, as systemd.exec(5) advises)."""
    value = (os.environ if env is None else env).get("JOURNAL_STREAM", "")
    dev, sep, ino = value.partition(":")
    if not sep or not dev.isdigit() or not ino.isdigit():
        return False
    try:
        st = os.fstat(stream.fileno())
    except (AttributeError, OSError, ValueError):
        return False
    return (st.st_dev, st.st_ino) == (int(dev), int(ino))


def configure_logging(
    level: str = "info",
    fmt: str = "auto",
    stream: TextIO | None = None,
    *,
    journald: bool | None = None,
) -> None:
    """Set up structlog and the stdlib root logger to write to ``stream`` (default stdout).

    ``fmt``: ``auto`` (console on a terminal, JSON otherwise), ``json`` or ``console``.
    ``journald``: prefix JSON lines with their syslog priority (``<4>{...}``); default: when
    ``stream`` is the journal (``$JOURNAL_STREAM``). Calling it again replaces the set-up.
    """
    out = sys.stdout if stream is None else stream
    console = _use_console(fmt, out)
    _FILTER.level = parse_level(level)

    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Processor
    if console:
        tail: list[Processor] = [
            structlog.processors.format_exc_info,
            _REDACTOR,
            ControlEscaper(keep_lines=frozenset({"exception", "stack"})),
        ]
        isatty = getattr(out, "isatty", None)
        renderer = structlog.dev.ConsoleRenderer(colors=bool(callable(isatty) and isatty()))
    else:
        tail = [structlog.processors.dict_tracebacks, _REDACTOR, ControlEscaper()]
        renderer = _JSONRenderer()
        if on_journal(out) if journald is None else journald:
            renderer = _JournalPrefix(renderer)

    structlog.configure(
        processors=[_FILTER, *shared, *tail, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
        context_class=dict,
        logger_factory=LineLoggerFactory(out),
        # False: a logger cached on first use would keep this stream and chain forever and
        # ignore later configure() calls (ours on reload, structlog.testing.capture_logs)
        cache_logger_on_first_use=False,
    )

    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *tail, renderer],
    )
    handler = _Handler(out)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(_FILTER.level)


def set_level(level: str) -> None:
    """Change the level of every logger, ours and the libraries', at once."""
    _FILTER.level = parse_level(level)
    logging.getLogger().setLevel(_FILTER.level)


def current_level() -> str:
    return logging.getLevelName(_FILTER.level).lower()


def reset_logging() -> None:
    """Undo :func:`configure_logging` (tests): structlog defaults, our root handler removed."""
    structlog.reset_defaults()
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(old)
    root.setLevel(logging.WARNING)
    _FILTER.level = logging.INFO
