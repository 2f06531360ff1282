"""The Telegram command bot (python-telegram-bot, long polling: no public webhook).

Commands, answered only in the chats listed in ``[telegram_bot] chat_ids``:

* ``/status``: every scope's margin ratio, nearest liquidation distance, shock to
  liquidation, equity and alerts; every feed's state and the age of its last message.
* ``/scope NAME``: one scope's figures. NAME is a scope as ``monitor status`` prints it
  (``venue:account/scope``), its account's whole label in any case (``main desk`` for
  ``Main desk``; read before a part of a name, as ``monitor status`` does) or any unique
  part of a scope's name (``0x1111``, ``alice/cross``).
* ``/history NAME [6h]``: a PNG chart of the scope's margin ratio and liquidation distance
  over the period (default ``history_hours``), thresholds drawn.
* ``/mute TARGET 2h [--critical] [--rule RULE] [--force] [reason…]``, ``/unmute TARGET
  [--rule RULE]``, ``/mutes``: the same mutes as ``monitor mute`` (stored, honoured by the
  daemon within a second); a target the store has never seen is refused with the nearest
  known name unless ``--force``. Each change is logged (``bot.mute``/``bot.unmute``) with
  the chat and the sender. A mute or unmute sent more than :data:`STALE_COMMAND` seconds
  before the bot saw it (the bot was down) is refused, not applied late.
* ``/whatif --shock -10% [--price ETH=2800] [--isolate SOL=500] [--cross SOL]``: the live
  book before and after, as ``monitor whatif`` (needs the daemon's portfolio).

Every update from another chat is ignored (no reply), counted in :attr:`CommandBot.ignored`
and logged once per chat (``bot.ignored_chat``). Data comes from the daemon's store (read with
:mod:`monitor.store.history`, written with :mod:`monitor.store.mutes`).

Failure handling: Telegram being unreachable never stops the daemon. :meth:`CommandBot.start`
returns at once; one task connects (``getMe``) and polls, retrying with a capped backoff;
the library's own loop retries failed polls. The token is registered with the log redactor
and ``httpx`` request logging (which prints URLs, token included) is kept at WARNING.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import structlog
from telegram import Update
from telegram.error import TelegramError
from telegram.ext import (
    Application,
    ApplicationHandlerStop,
    CommandHandler,
    ContextTypes,
    TypeHandler,
)

from monitor.alerts.mutes import Mute
from monitor.alerts.rules import AlertRules, parse_duration
from monitor.commands.mute import MAX_MUTE, RULES, _check, known_problem, longer_mutes
from monitor.config import TelegramBotConfig
from monitor.errors import ConfigError, InputError
from monitor.logs import register_secret
from monitor.model.ids import parse_subject
from monitor.model.portfolio import Portfolio
from monitor.notify.render import labelled_scope
from monitor.ops.charts import account_of, scope_chart, thresholds_from_rules
from monitor.store import history
from monitor.store.db import Store
from monitor.store.mutes import active_mutes, add_mute, remove_mutes
from monitor.whatif import (
    Scenario,
    parse_cross,
    parse_isolate,
    parse_price,
    parse_shock,
    render_result,
    what_if_portfolio,
)

#: seconds after which a queued /mute or /unmute is refused rather than applied late
STALE_COMMAND = 300.0
#: Telegram's message limit is 4,096 characters; leave room for the <pre> tags
CHUNK = 3900
#: longest wait between two connection attempts, seconds
MAX_BACKOFF = 300.0
_SEEN_CAP = 1000

HELP = """\
/status: every scope and feed
/scope NAME: one scope (any unique part of its name)
/history NAME [6h]: chart of margin ratio and liquidation distance
/mute TARGET 2h [--critical] [--rule RULE] [--force] [reason]
/unmute TARGET [--rule RULE]
/mutes: mutes in force
/whatif --shock -10% [--price ETH=2800] [--isolate SOL=500] [--cross SOL]"""


def log() -> Any:
    return structlog.get_logger()


# -- replies (pure) --------------------------------------------------------------------------


def _pct(x: object) -> str:
    return f"{x * 100:.1f}%" if isinstance(x, int | float) and math.isfinite(x) else "—"


def _money(x: object) -> str:
    return f"{x:,.2f}" if isinstance(x, int | float) and math.isfinite(x) else "—"


def _iso(ts: float | None) -> str:
    if ts is None:
        return "—"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _age(ts: float | None, now: float) -> str:
    if ts is None:
        return "never"
    s = max(now - ts, 0.0)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{s / size:.1f}{unit} ago"
    return f"{s:.0f}s ago"


def render_status(
    view: history.StatusView, now: float, labels: Mapping[str, str] | None = None
) -> str:
    """A phone-width summary: one block per scope (named by its account's label and its
    short id: ``Main desk (hyperliquid:0x1111…1111/cross)``; ``labels``: ``venue:account`` →
    label), one line per feed."""
    lines: list[str] = []
    if view.daemon:
        lines.append(
            f"daemon updated {_age(view.daemon_updated_at, now)}: "
            f"{view.daemon.get('summary', '')}".rstrip()
        )
    else:
        lines.append("daemon: no status written yet")
    for s in view.scopes:
        flag = "  LIQUIDATABLE" if s.get("liquidatable") else ""
        lines.append("")
        lines.append(f"{labelled_scope(str(s['scope_key']), labels)}{flag}")
        dist = _pct(s.get("nearest_liquidation_distance"))
        lines.append(
            f"  MR {_pct(s.get('margin_ratio'))} · liq {dist}"
            f" · shock {_pct(s.get('shock_to_liquidation'))} · eq {_money(s.get('equity'))}"
        )
        alerts = s.get("active_alerts") or []
        if alerts:
            lines.append("  alerts: " + ", ".join(alerts))
    if not view.scopes:
        lines.append("")
        lines.append("no scopes yet")
    lines.append("")
    feeds = [f for f in view.feeds if f["channel"] != "*"] or list(view.feeds)
    for f in feeds:
        name = f["venue"] + ("" if f["channel"] == "*" else f"/{f['channel']}")
        state = str(f["state"])
        shown = state if state in ("live", "recovered") else state.upper()
        lines.append(f"{name}: {shown}, last message {_age(f['last_message_at'], now)}")
    if not view.feeds:
        lines.append("no feed has reported yet")
    return "\n".join(lines)


def render_scope(doc: dict[str, Any], now: float, labels: Mapping[str, str] | None = None) -> str:
    """One scope's figures, headed by its label and short id (as :func:`render_status`)."""
    flag = "  LIQUIDATABLE" if doc.get("liquidatable") else ""
    alerts = ", ".join(doc.get("active_alerts") or []) or "none"
    return "\n".join(
        [
            f"{labelled_scope(str(doc['scope_key']), labels)}{flag}",
            f"equity {_money(doc.get('equity'))} · maintenance "
            f"{_money(doc.get('maintenance_margin'))}",
            f"margin ratio {_pct(doc.get('margin_ratio'))} (100% = liquidation)",
            f"nearest liquidation distance {_pct(doc.get('nearest_liquidation_distance'))}",
            f"shock to liquidation {_pct(doc.get('shock_to_liquidation'))}",
            f"funding per day {_money(doc.get('funding_cost_per_day'))} · collateral at risk "
            f"{_money(doc.get('collateral_at_risk'))} · positions {doc.get('positions', '—')}",
            f"alerts: {alerts}",
            f"as of {_iso(doc.get('updated_at'))} ({_age(doc.get('updated_at'), now)})",
        ]
    )


def match_scopes(name: str, scopes: Sequence[str]) -> list[str]:
    """``name`` itself when it is a scope, else every scope containing it (case-insensitive)."""
    if name in scopes:
        return [name]
    low = name.lower()
    return [s for s in scopes if low in s.lower()]


def labelled(name: str, labels: Mapping[str, str]) -> list[str]:
    """The accounts (``venue:account``) labelled ``name``: the whole label, in any case,
    blanks around either ignored (as ``monitor mute``/``history``/``status``:
    ``Names.by_label``), never a part of it (``desk`` is not ``desk2``). Several when labels
    differ only in case (``Desk``, ``desk``)."""
    low = name.strip().casefold()
    if not low:
        return []
    return [a for a, label in labels.items() if label.strip().casefold() == low]


def by_label(name: str, scopes: Sequence[str], labels: Mapping[str, str]) -> list[str]:
    """The scopes of the accounts labelled ``name`` (:func:`labelled`): ``/scope main desk``
    finds ``Main desk``'s scopes, ``/scope desk`` none of them."""
    accounts = labelled(name, labels)
    return [s for s in scopes if any(s.startswith(a + "/") for a in accounts)]


def find_scopes(
    name: str, scopes: Sequence[str], labels: Mapping[str, str]
) -> tuple[list[str], list[str]]:
    """What ``name`` designates among ``scopes``, and the accounts labelled ``name``: the
    scope itself when ``name`` is one; else the scopes of the accounts whose label is
    ``name`` (:func:`by_label`) when there are such accounts (a label is read before a part
    of an id, as by ``monitor mute``/``status``: none found then means they have no scope
    yet); else every scope holding ``name`` (:func:`match_scopes`)."""
    if name in scopes:
        return [name], []
    accounts = labelled(name, labels)
    if accounts:
        return [s for s in scopes if any(s.startswith(a + "/") for a in accounts)], accounts
    return match_scopes(name, scopes), []


def chunks(text: str, size: int = CHUNK) -> list[str]:
    """``text`` cut at line ends into pieces of at most ``size`` characters (a longer line is
    cut where it must)."""
    out: list[str] = []
    cur = ""
    for whole in text.splitlines(keepends=True):
        line = whole
        while len(line) > size:
            if cur:
                out.append(cur)
                cur = ""
            out.append(line[:size])
            line = line[size:]
        if len(cur) + len(line) > size:
            out.append(cur)
            cur = ""
        cur += line
    if cur or not out:
        out.append(cur)
    return [c.rstrip("\n") for c in out]


def _dashes(arg: str) -> str:
    """Phones turn ``--`` into an em or en dash; take those as ``--``."""
    for dash in ("—", "–"):  # the dashes a phone keyboard substitutes
        if arg.startswith(dash):
            return "--" + arg[len(dash) :].lstrip("-")
    return arg


def parse_whatif(args: Sequence[str]) -> list[Scenario]:
    """``--shock X``, ``--price S=P``, ``--isolate S=M``, ``--cross S`` (repeatable); raises
    InputError."""
    parsers: dict[str, Callable[[str], Scenario]] = {
        "--shock": parse_shock,
        "--price": parse_price,
        "--isolate": parse_isolate,
        "--cross": parse_cross,
    }
    out: list[Scenario] = []
    items = [_dashes(a) for a in args]
    i = 0
    while i < len(items):
        flag, _, inline = items[i].partition("=") if items[i].startswith("--") else ("", "", "")
        parse = parsers.get(flag)
        if parse is None:
            raise InputError("whatif", items[i], f"expected one of {', '.join(parsers)}")
        if inline:
            value = inline
            i += 1
        else:
            if i + 1 >= len(items):
                raise InputError("whatif", flag, "needs a value")
            value = items[i + 1]
            i += 2
        out.append(parse(value))
    if not out:
        raise InputError("whatif", None, "say what changes, e.g. /whatif --shock -10%")
    order = (
        "Isolate",
        "Cross",
        "SetPrice",
        "Shock",
    )  # the order the scenarios apply in anyway; keeps the echo readable
    return sorted(out, key=lambda s: order.index(type(s).__name__))


def parse_mute(args: Sequence[str]) -> tuple[str, float, str | None, bool, str]:
    """``TARGET DURATION [--critical] [--rule RULE] [reason…]`` → (target, seconds, rule,
    critical, reason); raises ConfigError as ``monitor mute`` does."""
    items = [_dashes(a) for a in args]
    if len(items) < 2:
        raise ConfigError("mute", "arguments", "usage: /mute TARGET 2h [--critical] [--rule R]")
    target_arg, duration = items[0], items[1]
    rule: str | None = None
    critical = False
    reason: list[str] = []
    rest = iter(items[2:])
    for a in rest:
        if a == "--critical":
            critical = True
        elif a == "--rule":
            rule = next(rest, None)
            if rule is None:
                raise ConfigError("mute", "--rule", f"name a rule ({', '.join(RULES)})")
        else:
            reason.append(a)
    target = _check(target_arg, rule)
    secs = parse_duration(duration, "mute", "DURATION")
    if secs <= 0:
        raise ConfigError("mute", "DURATION", "must be > 0")
    if secs > MAX_MUTE:
        raise ConfigError("mute", "DURATION", "at most 366 days")
    return target, secs, rule, critical, " ".join(reason)


# -- the bot ---------------------------------------------------------------------------------


class CommandBot:
    """The bot. ``store``: the daemon's open store. ``rules()``: the alert rules in force (for
    the chart thresholds; None: the defaults). ``portfolio()``: the daemon's live portfolio for
    ``/whatif`` (None: not offered). ``now``: the wall clock (epoch s).

    :meth:`start` returns at once (one task connects and polls); :meth:`stop` ends it.
    ``ignored`` counts updates from chats not listed; ``answered`` commands handled.
    """

    def __init__(
        self,
        cfg: TelegramBotConfig,
        store: Store,
        *,
        rules: Callable[[], AlertRules | None] | None = None,
        portfolio: Callable[[], Portfolio | None] | None = None,
        now: Callable[[], float] = time.time,
        labels: Mapping[str, str] | None = None,
    ) -> None:
        if not cfg.token:
            raise ValueError("the Telegram bot needs [telegram_bot] token")
        self.cfg = cfg
        self.token: str = cfg.token
        self.store = store
        self.rules = rules or (lambda: None)
        self.portfolio = portfolio
        self.now = now
        self.labels: Mapping[str, str] = dict(labels or {})
        self.ignored = 0
        self.answered = 0
        self.connected = asyncio.Event()
        self._seen: set[int] = set()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # -- life cycle --------------------------------------------------------------------------
    def _build(self) -> Application[Any, Any, Any, Any, Any, Any]:
        builder = Application.builder().token(self.token)
        if self.cfg.api_url:
            base = self.cfg.api_url
            builder = builder.base_url(base).base_file_url(base.rstrip("/") + "/file/bot")
        # a long poll lasts poll_timeout: the read timeout must outlast it
        builder = builder.get_updates_read_timeout(self.cfg.poll_timeout + 10.0)
        app = builder.build()
        app.add_handler(TypeHandler(Update, self._gate), group=-1)
        for name, callback in (
            ("start", self._help),
            ("help", self._help),
            ("status", self._status),
            ("scope", self._scope),
            ("history", self._history),
            ("mute", self._mute),
            ("unmute", self._unmute),
            ("mutes", self._mutes),
            ("whatif", self._whatif),
        ):
            app.add_handler(CommandHandler(name, callback))
        app.add_error_handler(self._on_error)
        return app

    async def start(self) -> None:
        """Start connecting and polling in the background; returns at once."""
        register_secret(self.token)
        logging.getLogger("httpx").setLevel(logging.WARNING)  # it logs URLs with the token
        self._stop.clear()
        self._task = asyncio.create_task(self._run(), name="telegram-bot")

    async def stop(self) -> None:
        """Stop polling (the current long poll is abandoned) and close the connections."""
        self._stop.set()
        task, self._task = self._task, None
        if task is not None:
            try:
                await asyncio.wait_for(task, 15.0)
            except TimeoutError:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _run(self) -> None:
        delay = 1.0
        while not self._stop.is_set():
            app = self._build()
            try:
                await app.initialize()  # getMe: checks the token
                await app.start()
                assert app.updater is not None
                await app.updater.start_polling(
                    timeout=int(self.cfg.poll_timeout),
                    allowed_updates=["message"],
                    error_callback=self._poll_error,
                )
            except Exception as exc:  # Telegram down, bad token, or a bug: never the daemon's end
                level = "warning" if isinstance(exc, TelegramError | OSError) else "error"
                getattr(log(), level)(
                    "bot.connect_failed", error=f"{type(exc).__name__}: {exc}"[:300], retry_in=delay
                )
                await self._close(app)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), delay)
                delay = min(delay * 2.0, MAX_BACKOFF)
                continue
            log().info("bot.connected", username=app.bot.username, chats=len(self.cfg.chat_ids))
            self.connected.set()
            await self._stop.wait()
            await self._close(app)
            self.connected.clear()

    @staticmethod
    async def _close(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
        for step in (
            app.updater.stop if app.updater is not None and app.updater.running else None,
            app.stop if app.running else None,
            app.shutdown,
        ):
            if step is None:
                continue
            try:
                await step()
            except Exception as exc:  # closing must go on whatever Telegram says
                log().warning("bot.close_failed", error=f"{type(exc).__name__}: {exc}"[:200])

    def _poll_error(self, exc: TelegramError) -> None:
        log().warning("bot.poll_failed", error=f"{type(exc).__name__}: {exc}"[:300])

    # -- handlers ----------------------------------------------------------------------------
    async def _gate(self, update: Update, _: ContextTypes.DEFAULT_TYPE) -> None:
        chat = update.effective_chat
        if chat is not None and chat.id in self.cfg.chat_ids:
            return
        self.ignored += 1
        chat_id = chat.id if chat is not None else 0
        if chat_id not in self._seen and len(self._seen) < _SEEN_CAP:
            self._seen.add(chat_id)
            user = update.effective_user
            log().warning(
                "bot.ignored_chat",
                chat_id=chat_id,
                user_id=user.id if user else None,
                username=user.username if user else None,
            )
        raise ApplicationHandlerStop

    async def _reply(self, update: Update, text: str, *, pre: bool = True) -> None:
        msg = update.effective_message
        if msg is None:
            return
        for piece in chunks(text):
            body = f"<pre>{html.escape(piece)}</pre>" if pre else html.escape(piece)
            await msg.reply_text(body, parse_mode="HTML")

    def _sender(self, update: Update) -> dict[str, Any]:
        user = update.effective_user
        chat = update.effective_chat
        return {
            "chat_id": chat.id if chat else None,
            "user_id": user.id if user else None,
            "username": user.username if user else None,
        }

    def _too_old(self, update: Update) -> bool:
        msg = update.effective_message
        return msg is not None and self.now() - msg.date.timestamp() > STALE_COMMAND

    async def _help(self, update: Update, _: ContextTypes.DEFAULT_TYPE) -> None:
        self.answered += 1
        await self._reply(update, HELP, pre=False)

    async def _status(self, update: Update, _: ContextTypes.DEFAULT_TYPE) -> None:
        self.answered += 1
        view = await history.read_status(self.store)
        await self._reply(update, render_status(view, self.now(), self.labels))

    async def _find(self, update: Update, name: str | None) -> str | None:
        """The one scope ``name`` designates, or None after telling the user why."""
        known = sorted(set(await history.scopes(self.store)) | await self._status_scopes())
        if not name:
            await self._reply(update, "name a scope: " + (", ".join(known[:10]) or "none yet"))
            return None
        found, accounts = find_scopes(name, known, self.labels)
        if len(found) == 1:
            return found[0]
        shown = ", ".join(known[:10]) or "none"
        if accounts and not found:
            which = ", ".join(accounts[:10])
            verb = "has" if len(accounts) == 1 else "have"
            await self._reply(
                update,
                f"{name!r} is the label of {which}, which {verb} no scope yet; known: {shown}",
            )
        elif not found:
            await self._reply(update, f"no scope matches {name!r}; known: {shown}")
        else:
            several = (labelled_scope(s, self.labels) for s in found[:20])
            await self._reply(update, f"{name!r} matches several:\n" + "\n".join(several))
        return None

    async def _names_one(self, name: str) -> bool:
        """Whether ``name`` designates exactly one known scope."""
        known = sorted(set(await history.scopes(self.store)) | await self._status_scopes())
        return len(find_scopes(name, known, self.labels)[0]) == 1

    async def _status_scopes(self) -> set[str]:
        return {str(s["scope_key"]) for s in (await history.read_status(self.store)).scopes}

    async def _scope(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        self.answered += 1
        scope = await self._find(update, " ".join(context.args or []) or None)
        if scope is None:
            return
        view = await history.read_status(self.store)
        doc = next((s for s in view.scopes if s["scope_key"] == scope), None)
        if doc is None:
            await self._reply(update, f"{scope}: no current figures (only history)")
            return
        await self._reply(update, render_scope(doc, self.now(), self.labels))

    async def _history(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        self.answered += 1
        args = list(context.args or [])
        hours = self.cfg.history_hours
        if len(args) >= 2 and await self._names_one(" ".join(args)):
            pass  # a label with a space ("/history Alice desk"): no period given
        elif len(args) >= 2:
            try:
                hours = parse_duration(args[-1], "history", "DURATION") / 3600.0
            except ConfigError as exc:
                await self._reply(update, str(exc))
                return
            args = args[:-1]
        if hours <= 0:
            await self._reply(update, "the period must be > 0, e.g. 6h")
            return
        scope = await self._find(update, " ".join(args) or None)
        if scope is None:
            return
        since = self.now() - hours * 3600.0
        samples = await history.read_history(self.store, scope, since)
        if not samples:
            await self._reply(update, f"{scope}: no samples in the last {hours:g}h")
            return
        th = thresholds_from_rules(self.rules(), account_of(scope))
        shown = labelled_scope(scope, self.labels)
        png = await scope_chart(self.store, scope, since=since, thresholds=th, title=shown)
        msg = update.effective_message
        if png is None or msg is None:
            return
        ratios = [s.margin_ratio for s in samples if s.margin_ratio is not None]
        dists = [s.nearest_liq for s in samples if s.nearest_liq is not None]
        caption = (
            f"{shown}, last {hours:g}h: {len(samples)} samples; margin ratio "
            f"{_pct(min(ratios)) if ratios else '—'}–{_pct(max(ratios)) if ratios else '—'}, "
            f"nearest liquidation at least {_pct(min(dists)) if dists else '—'}"
        )
        if any(s.equity is not None and s.equity <= 0 for s in samples):
            caption += "; equity fell to 0 or below"
        await msg.reply_photo(png, caption=caption[:1024], filename="history.png")

    async def _mute(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        self.answered += 1
        if self._too_old(update):
            await self._reply(update, "not muted: that command waited too long to reach me")
            return
        args = [_dashes(a) for a in context.args or []]
        # --force (after TARGET and DURATION) mutes a target the store has not seen yet
        force = "--force" in args[2:]
        args = args[:2] + [a for a in args[2:] if a != "--force"]
        try:
            target, secs, rule, critical, reason = parse_mute(args)
        except ConfigError as exc:
            await self._reply(update, f"{exc.field}: {exc.problem}", pre=False)
            return
        if not force:
            # as `monitor mute`: a target that names nothing known is refused, never "muted"
            problem = known_problem(parse_subject(target), None, await history.known(self.store))
            if problem is not None:
                await self._reply(update, f"not muted: {problem}", pre=False)
                return
        now = self.now()
        sender = self._sender(update)
        who = sender["username"] or sender["user_id"]
        mute = Mute(target, now + secs, rule, critical, reason or f"telegram: {who}")
        await add_mute(self.store, mute, now)
        log().info(
            "bot.mute",
            target=target,
            rule=rule,
            critical=critical,
            until=_iso(mute.until),
            reason=mute.reason,
            **sender,
        )
        what = target + (f" (rule {rule})" if rule else "")
        crit = "critical included" if critical else "critical still sent"
        text = f"muted {what} until {_iso(mute.until)}, {crit}"
        longer = longer_mutes(mute, await active_mutes(self.store, now))
        if longer:
            until = _iso(max(m.until for m in longer))
            text += f"; an earlier mute lasts until {until} and still applies (/unmute it first)"
        await self._reply(update, text, pre=False)

    async def _unmute(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        self.answered += 1
        if self._too_old(update):
            await self._reply(update, "not unmuted: that command waited too long to reach me")
            return
        args = [_dashes(a) for a in context.args or []]
        rule = None
        if len(args) == 3 and args[1] == "--rule":
            rule = args[2]
        elif len(args) != 1:
            await self._reply(update, "usage: /unmute TARGET [--rule RULE]", pre=False)
            return
        try:
            target = _check(args[0], rule)
        except ConfigError as exc:
            await self._reply(update, f"{exc.field}: {exc.problem}", pre=False)
            return
        n = await remove_mutes(self.store, target, rule)
        log().info("bot.unmute", target=target, rule=rule, removed=n, **self._sender(update))
        await self._reply(update, f"removed {n} mute{'s' if n != 1 else ''} of {target}", pre=False)

    async def _mutes(self, update: Update, _: ContextTypes.DEFAULT_TYPE) -> None:
        self.answered += 1
        mutes = await active_mutes(self.store, self.now())
        lines = [
            f"{m.target} {m.rule or 'all rules'} until {_iso(m.until)}"
            f"{' incl. critical' if m.critical else ''}{f' ({m.reason})' if m.reason else ''}"
            for m in mutes
        ]
        await self._reply(update, "\n".join(lines) or "no mutes in force")

    async def _whatif(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        self.answered += 1
        book = self.portfolio() if self.portfolio is not None else None
        if book is None:
            await self._reply(update, "whatif needs the running daemon's book; not available")
            return
        try:
            result = what_if_portfolio(book, parse_whatif(context.args or []))
        except InputError as exc:
            # "whatif" as the source names no flag: show the field; else the whole message
            text = str(exc) if exc.source != "whatif" else f"{exc.field or ''}: {exc.problem}"
            await self._reply(update, text.lstrip(": "), pre=False)
            return
        await self._reply(update, render_result(result))

    async def _on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        err = context.error
        log().error("bot.handler_failed", error=f"{type(err).__name__}: {err}"[:300])
        if isinstance(update, Update) and update.effective_message is not None:
            with contextlib.suppress(Exception):
                await update.effective_message.reply_text(
                    f"internal error ({type(err).__name__}); see the daemon's log"
                )


async def start_bot(
    cfg: TelegramBotConfig,
    store: Store,
    *,
    rules: Callable[[], AlertRules | None] | None = None,
    portfolio: Callable[[], Portfolio | None] | None = None,
    labels: Mapping[str, str] | None = None,
) -> CommandBot:
    """Build and start the bot (returns at once; see :class:`CommandBot`). ``labels``:
    ``venue:account`` → the account's configured label, shown in /status and /scope and
    accepted by /scope and /history. Call ``await bot.stop()`` on the way out."""
    bot = CommandBot(cfg, store, rules=rules, portfolio=portfolio, labels=labels)
    await bot.start()
    return bot
