"""Recording raw venue frames and replaying them through the parsers and the engine.

Recording format (JSONL, UTF-8, one object per line, in receive order)::

    {"ts_recv": 1778000000.123, "venue": "hyperliquid", "channel": "activeAssetCtx:BTC",
     "frame": "{\\"channel\\":\\"activeAssetCtx\\",\\"data\\":{...}}"}

* ``ts_recv``: receive time, seconds since the Unix epoch (UTC), as stamped by the feed;
* ``venue``: the venue name of the events (``hyperliquid``, ``dydx``; the old spelling
  ``dydx_v4`` is read as ``dydx``);
* ``channel``: for WebSocket frames the subscription the frame belonged to (the parser's
  channel key) or ``ws`` for control frames and frames the parser refused; for REST bodies
  ``rest:<name>``, where ``<name>`` is what the venue parser's ``parse_rest`` takes
  (``rest:metaAndAssetCtxs``, ``rest:clearinghouseState:<user>``, ``rest:perpetualMarkets``,
  ``rest:subaccount:<address>/<n>``, ``rest:parentSubaccount:<address>/<n>``);
* ``frame``: the raw frame or body text, exactly as received (binary frames decoded as UTF-8).

Replay reads the lines in order, gives each frame to a fresh parser of its venue
(``parse`` for WebSocket frames, ``parse_rest`` for ``rest:`` ones), applies the events to a
fresh :class:`~monitor.model.portfolio.Portfolio`, and calls ``on_batch`` once per frame with
the scopes it touched. Only recorded times are used, so the same recording gives the same
output every time; ``speed`` > 0 paces the frames at ``1/speed`` of their recorded gaps (1 =
recorded speed), 0 replays as fast as possible.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson
import structlog

from monitor.alerts.rules import AlertRules
from monitor.clock import Clock, SystemClock
from monitor.engine.core import Engine, Step
from monitor.errors import InputError, ParseError
from monitor.model.events import Event
from monitor.model.portfolio import Portfolio
from monitor.model.positions import ScopeKey
from monitor.model.venues import canonical
from monitor.venues.parsing import FrameParser

log = structlog.get_logger()


@dataclass(frozen=True, slots=True)
class Record:
    """One recorded frame (see the module docstring)."""

    ts_recv: float
    venue: str
    channel: str
    frame: str

    def to_line(self) -> bytes:
        return orjson.dumps(
            {
                "ts_recv": self.ts_recv,
                "venue": self.venue,
                "channel": self.channel,
                "frame": self.frame,
            }
        )


class JsonlRecorder:
    """Appends records to a JSONL file; callable as a feed ``recorder``.

    Writes go to a buffered file (no flush per frame: the event loop is not held up by
    disk I/O); :meth:`flush` is called by the owner on a timer and :meth:`close` at the end.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[bytes] = path.open("ab")
        self.count = 0
        self.by_venue: dict[str, int] = {}

    def __call__(self, ts_recv: float, venue: str, channel: str, frame: str) -> None:
        self._file.write(Record(ts_recv, venue, channel, frame).to_line() + b"\n")
        self.count += 1
        self.by_venue[venue] = self.by_venue.get(venue, 0) + 1

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        if not self._file.closed:
            self._file.flush()
            self._file.close()


def read_recording(path: Path) -> Iterator[Record]:
    """The records of ``path`` in file order, streamed line by line (a recording is never read
    whole). A malformed line raises InputError naming the line, except a final line cut short
    (no newline: the recorder was killed), which is skipped with a warning."""
    try:
        f = path.open("rb")
    except OSError as exc:
        raise InputError(str(path), None, exc.strerror or str(exc)) from None
    with f:
        for i, line in enumerate(f):
            if not line.strip():
                continue
            try:
                yield _record(line)
            except (orjson.JSONDecodeError, ValueError, TypeError) as exc:
                if not line.endswith(b"\n"):  # the last line, cut short
                    log.warning("replay.truncated_line", path=str(path), line=i + 1)
                    return
                raise InputError(str(path), f"line {i + 1}", str(exc)) from None


def _record(line: bytes) -> Record:
    obj = orjson.loads(line)
    if not isinstance(obj, dict):
        raise ValueError("expected an object")
    ts, venue, channel, frame = (obj.get(k) for k in ("ts_recv", "venue", "channel", "frame"))
    if isinstance(ts, bool) or not isinstance(ts, int | float) or not math.isfinite(ts):
        raise ValueError("ts_recv must be a number (epoch seconds)")
    for name, value in (("venue", venue), ("channel", channel), ("frame", frame)):
        if not isinstance(value, str):
            raise ValueError(f"{name} must be a string")
    # recordings made before the venue table name dYdX ``dydx_v4``: read as the canonical name
    return Record(float(ts), canonical(venue), channel, frame)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Batch:
    """What one replayed frame did: its events and the scopes they touched, with the
    portfolio after applying them (read it, do not mutate it)."""

    record: Record
    events: tuple[Event, ...]
    touched: tuple[ScopeKey, ...]
    portfolio: Portfolio
    step: Step | None = None
    """What the engine decided for this frame (its alert transitions among it)."""


OnBatch = Callable[[Batch], None]


@dataclass
class ReplayStats:
    frames: int = 0
    events: int = 0
    bad_frames: int = 0
    unknown_venue: int = 0
    quarantined: int = 0
    bad_by_venue: dict[str, int] = field(default_factory=dict)


def events_of(parser: FrameParser, record: Record) -> list[Event]:
    """The events of one recorded frame (a WS frame, or a REST body on ``rest:<name>``);
    raises ParseError for a bad one."""
    if record.channel.startswith("rest:"):
        return parser.parse_rest(record.channel[5:], record.frame, record.ts_recv)
    return parser.parse(record.frame, record.ts_recv)


class Replayer:
    """Feeds records through fresh parsers and the daemon's engine (pure: no clock, no I/O).

    The engine runs with ``full=True``: every scope a frame touches is evaluated (no price
    bands), so each frame reports every scope it changed; the alert decisions are the engine's
    own, at the recording's times."""

    def __init__(self, parsers: Mapping[str, Callable[[], FrameParser]], on_batch: OnBatch) -> None:
        self._factories = parsers
        self._parsers: dict[str, FrameParser] = {}
        self.engine = Engine(AlertRules.default(), replay=True, full=True, max_evaluations=1 << 62)
        self.portfolio = self.engine.portfolio
        self.on_batch = on_batch
        self.stats = ReplayStats()
        self._unknown_logged: set[str] = set()

    def feed(self, record: Record) -> None:
        stats = self.stats
        stats.frames += 1
        parser = self._parsers.get(record.venue)
        if parser is None:
            factory = self._factories.get(record.venue)
            if factory is None:
                stats.unknown_venue += 1
                if record.venue not in self._unknown_logged:
                    self._unknown_logged.add(record.venue)
                    log.warning("replay.unknown_venue", venue=record.venue)
                return
            parser = self._parsers[record.venue] = factory()
        try:
            events = events_of(parser, record)
        except ParseError as exc:
            stats.bad_frames += 1
            stats.bad_by_venue[record.venue] = stats.bad_by_venue.get(record.venue, 0) + 1
            log.warning("replay.bad_frame", venue=exc.venue, problem=exc.problem, frame=exc.frame)
            return
        except Exception:  # a parser bug: counted like a bad frame, the replay goes on
            stats.bad_frames += 1
            stats.bad_by_venue[record.venue] = stats.bad_by_venue.get(record.venue, 0) + 1
            log.exception("replay.parser_failed", venue=record.venue, frame=record.frame[:200])
            return
        step = self.engine.receive(events, record.ts_recv, sweep=False)
        touched = dict.fromkeys([*(r.key for r in step.risks), *step.removed])
        stats.events += len(events)
        stats.quarantined += len(step.quarantined)
        self.on_batch(Batch(record, tuple(events), tuple(touched), self.portfolio, step))


async def replay(
    path: Path,
    parsers: Mapping[str, Callable[[], FrameParser]],
    on_batch: OnBatch,
    *,
    speed: float = 0.0,
    clock: Clock | None = None,
) -> ReplayStats:
    """Replay ``path`` (see the module docstring); ``speed`` 0 = as fast as possible."""
    if speed < 0 or not math.isfinite(speed):
        raise InputError("--speed", None, "must be 0 (as fast as possible) or positive")
    clock = clock or SystemClock()
    replayer = Replayer(parsers, on_batch)
    previous: float | None = None
    for record in read_recording(path):
        if speed > 0 and previous is not None and record.ts_recv > previous:
            await clock.sleep((record.ts_recv - previous) / speed)
        previous = record.ts_recv if previous is None else max(previous, record.ts_recv)
        replayer.feed(record)
    return replayer.stats


def risk_line(batch: Batch, key: ScopeKey, *, as_json: bool) -> str | None:
    """The compact summary of one touched scope after ``batch``: time, scope, equity, margin
    ratio (maintenance / equity; ≥ 1 means liquidatable) and the nearest liquidation distance
    (fraction of the price). None when the scope vanished. A scope whose figures raise (a
    margin-model bug on one scope: the engine alarms ``margin_unknown`` for it) is printed
    with no figures and the error (JSON ``error``; text ``unknown (TYPE: message)``), and
    the replay goes on."""
    ts = batch.record.ts_recv
    error: str | None = None
    figures: tuple[float | None, ...] = (None, None, None, None)
    try:
        risk = batch.portfolio.risk(key, with_stress=False)
    except Exception as exc:  # fail closed: unknown figures, said; never the replay's end
        error = f"{type(exc).__name__}: {exc}"[:200]
    else:
        if risk is None:
            return None
        figures = (
            risk.equity,
            risk.maintenance_margin,
            risk.margin_ratio,
            risk.nearest_liquidation_distance,
        )
    equity, mm, ratio, nearest = figures
    if as_json:
        obj: dict[str, Any] = {
            "ts": ts,
            "scope": str(key),
            "venue": key.venue,
            "account": key.account,
            "margin_scope": key.scope,
            "equity": _finite(equity),
            "maintenance_margin": _finite(mm),
            "margin_ratio": _finite(ratio),
            "nearest_liquidation_distance": _finite(nearest),
        }
        if error is not None:
            obj["error"] = error
        return orjson.dumps(obj).decode()
    line = (
        f"{_iso(ts)} {key} equity={_fmt(equity)} mm={_fmt(mm)} "
        f"ratio={_pct(ratio)} nearest_liq={_pct(nearest)}"
    )
    return line if error is None else f"{line} unknown ({error})"


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def _fmt(x: float | None) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{x:.2f}"


def _pct(x: float | None) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{x * 100:.2f}%"


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
