"""Finding the daemon's store from ``--store`` or ``--config`` (shared by read-only commands).

Reading the store never needs a channel's secrets: with ``--config`` the file is validated
without its ``[channels]`` table, so ``monitor status --config /etc/monitor/monitor.toml``
works in an admin's shell that lacks the daemon's ``${TELEGRAM_TOKEN}``.

Also shared: :class:`Names` (the configured account labels, shown beside ids and accepted in
their place) and :func:`clean` (venue-chosen text made safe for a terminal).
"""

from __future__ import annotations

import argparse
import difflib
import os
import tomllib
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from monitor import fmt
from monitor.config import Config, default_store_path, parse_config
from monitor.errors import ConfigError, InputError
from monitor.model.ids import (
    AccountKey,
    PositionKey,
    ScopeKey,
    Subject,
    account_of,
    is_scope_word,
    near_scope_word,
)
from monitor.notify.render import account_label

#: where systemd/monitor.service keeps its store (StateDirectory=monitor)
UNIT_STORE = Path("/var/lib/monitor/monitor.sqlite3")


def add_store_args(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--store", type=Path, metavar="PATH", help="the daemon's SQLite store")
    g.add_argument(
        "--config",
        "-c",
        type=Path,
        metavar="FILE",
        help="the daemon's configuration (its [store] path is used)",
    )


def clean(text: object) -> str:
    """``text`` safe for a terminal: control and format characters (C0, DEL, C1, bidi
    overrides, line/paragraph separators) written as ``\\xNN``/``\\uNNNN`` escapes, so a
    venue-chosen string can neither move the cursor nor rewrite what was printed."""
    out = str(text)
    if out.isprintable():
        return out
    return "".join(
        c
        if c == " " or unicodedata.category(c) not in ("Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn")
        else (f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}")
        for c in out
    )


@dataclass(frozen=True, slots=True)
class Located:
    """Where the store is (``path``), where that came from (``origin``: ``--store``,
    ``[store] of FILE``, ``default location``) and the configuration when ``--config`` was
    given (read without its ``[channels]``, no secret read)."""

    path: Path
    origin: str
    config: Config | None = None


def locate(args: argparse.Namespace) -> Located:
    """:func:`store_location` with the configuration kept. Raises ConfigError."""
    if getattr(args, "store", None) is not None:
        return Located(Path(args.store), "--store")
    if getattr(args, "config", None) is not None:
        config = read_config(Path(args.config))
        return Located(config.store.path, f"[store] of {args.config}", config)
    default = default_store_path(os.environ)
    if not default.exists() and UNIT_STORE.exists():
        # the admin's shell, not the unit's: read the store the systemd unit writes
        return Located(UNIT_STORE, "the systemd unit's store")
    return Located(default, "default location")


def read_config(config: Path) -> Config:
    """``config`` validated without its ``[channels]`` and without reading secrets.
    Raises ConfigError."""
    try:
        doc = tomllib.loads(config.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise ConfigError(str(config), None, "no such file") from None
    except OSError as exc:
        raise ConfigError(str(config), None, f"cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(str(config), None, "not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(config), None, f"not valid TOML: {exc}") from None
    without_channels = {k: v for k, v in doc.items() if k != "channels"}
    return parse_config(without_channels, config, secrets=False)


@dataclass(frozen=True, slots=True)
class Names:
    """Account labels of a configuration, for showing and for reading names people know."""

    labels: Mapping[AccountKey, str] = field(default_factory=dict)

    @classmethod
    def of(cls, config: Config | None) -> Names:
        if config is None:
            return cls()
        return cls({a.key: a.label for a in config.accounts if a.label})

    def label(self, key: AccountKey | None) -> str | None:
        """The configured label of ``key`` (a HIP-3 dex account ``0x…@dex`` has its
        address's with ``@dex``, a dYdX child subaccount ``/128`` its parent's with ``/128``),
        or None."""
        if key is None:
            return None
        found = self.labels.get(key)
        if found is None:
            # a HIP-3 dex account (``Main desk @xyz``), a dYdX child subaccount
            # (``dydx desk /128``): their parent's label, as the alerts show it
            found = account_label(str(key), {str(k): v for k, v in self.labels.items()})
        return found

    def show(self, subject: Subject | str, *, short: bool = False) -> str:
        """``subject``'s text, its account id shortened (``0x1111…1111``) when ``short``,
        followed by `` (label)`` when the account has one."""
        text = str(subject)
        key = subject if not isinstance(subject, str) else None
        if short:
            text = fmt.short_scope(text)
        label = self.label(account_of(key)) if key is not None else None
        return f"{text} ({clean(label)})" if label else text

    def near_label(self, text: str) -> str | None:
        """``'label' (venue:account)`` for the label nearest to ``text`` (any case, at least
        0.6 alike), or None: the answer to a mistyped label."""
        by_low = {v.casefold(): (v, k) for k, v in self.labels.items()}
        near = difflib.get_close_matches(text.strip().casefold(), list(by_low), n=1, cutoff=0.6)
        if not near:
            return None
        label, key = by_low[near[0]]
        return f"{label!r} ({key})"

    def by_label(self, text: str) -> list[AccountKey]:
        """The accounts labelled ``text`` (case-insensitive)."""
        low = text.strip().casefold()
        return [k for k, v in self.labels.items() if v.casefold() == low]


#: the scope words a typed name's last ``/`` segment is compared with (``isolated`` stands for
#: ``isolated:SYMBOL``)


def scope_typo(text: str) -> str | None:
    """Why ``text`` (a target as typed: ``VENUE:ACCOUNT[/SCOPE[#SYMBOL]]``) looks like a
    mistyped scope, or None. The parser reads ``hyperliquid:0x…/crosss`` as an ACCOUNT named
    ``0x…/crosss`` (a scope word must be exact), which matches nothing; a last ``/`` segment
    of the account part that is a scope word in other capitals (``Cross``), at least 0.6
    alike to one (``crosss``, ``venue_ratio``), or ``isolated:SYMBOL`` misspelt
    (``isolate:ETH``, ``iso:ETH``) is refused with the nearest scope. An account whose name
    really ends so is written with its ``/`` as ``%2F``. Labels and feeds are not checked."""
    venue, sep, rest = text.partition(":")
    if not sep or venue.casefold() == "feed":
        return None
    _, slash, seg = rest.partition("#")[0].rpartition("/")
    if not slash or not seg or is_scope_word(seg):
        return None
    meant = near_scope_word(seg)
    if meant is None:
        return None
    return (
        f"{seg!r} is not a scope; did you mean {meant!r}? (a scope is 'cross', 'venue-ratio' "
        f"or 'isolated:SYMBOL', exactly; an account whose name ends in '/{seg}' is written "
        "with that '/' as %2F)"
    )


def said(exc: InputError, *commands: str) -> str:
    """``exc`` for a line ``monitor COMMAND: …``: without its source when that source is the
    command itself (``monitor mute: --for: …``, never ``monitor mute: mute: --for: …``)."""
    if exc.source in commands:
        return f"{exc.field}: {exc.problem}" if exc.field else exc.problem
    return str(exc)


def scopes_of(keys: Iterable[ScopeKey | PositionKey]) -> set[ScopeKey]:
    return {k.scope if isinstance(k, PositionKey) else k for k in keys}


def store_location(args: argparse.Namespace) -> tuple[Path, str]:
    """(path, where it came from): ``--store``, else the ``[store]`` path of ``--config``
    (validated without its ``[channels]``), else the default location. The second item is
    what ``monitor status`` prints: ``--store``, ``[store] of FILE``, ``default location``.
    Raises ConfigError for a bad configuration file."""
    where = locate(args)
    return where.path, where.origin


def store_path(args: argparse.Namespace) -> Path:
    """``--store``, else the ``[store]`` path of ``--config``, else the default location.
    Raises ConfigError for a bad configuration file."""
    return store_location(args)[0]
