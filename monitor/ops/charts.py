"""PNG charts of one scope's risk history: margin ratio (top) and nearest liquidation distance
(bottom) over time, with the alert thresholds drawn, for ``monitor history --png``, the
Telegram bot's ``/history`` and alert attachments.

Figures come from the store's risk history (:mod:`monitor.store.history`): ``margin_ratio`` =
maintenance / equity (drawn in %, 100 % = liquidatable), ``nearest_liq`` = the smallest
``|mark − liquidation price| / mark`` of the scope's positions (in %). A sample whose figure
is unknown leaves a gap in the line, never a made-up value; a sample taken while the margin
ratio was unknown because equity ≤ 0 is marked with a red ✕ at the top of the ratio panel.

Alert attachments: :func:`outbound.build_messages <monitor.notify.outbound.build_messages>`
stores a :class:`ChartSpec` per scope of a critical alert in the outbox row (``attach``, JSON:
:func:`encode_specs`) for a channel with ``charts = true``; the delivery worker renders them
with :func:`render_attachments` when it sends the row, so a retry draws them again.

Rendering uses matplotlib's object API on the Agg canvas (no pyplot, no global state, no
display): :func:`render_png` is CPU-bound (about 0.1–0.3 s), so async callers run it in a
worker thread (:func:`scope_chart` does). matplotlib is imported on first use only; under
systemd its cache goes to ``$STATE_DIRECTORY/matplotlib`` (unless ``MPLCONFIGDIR`` is set).
"""

from __future__ import annotations

import asyncio
import io
import math
import os
import re
import tempfile
import threading
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from monitor.alerts.rules import AlertRules, RuleKind
from monitor.store import history
from monitor.store.db import Store

if TYPE_CHECKING:
    from matplotlib.axes import Axes

#: default picture size, pixels (at 100 dpi)
WIDTH, HEIGHT = 1000, 600
#: the margin-ratio panel's scale ends here (%): beyond liquidation only "how far" matters
RATIO_CAP = 200.0
_SCOPE = re.compile(r"^(?P<account>[^:/]+:.*?)/(?P<scope>cross|isolated:.+)$")
_COLOURS = {"info": "#1f77b4", "warning": "#e69f00", "critical": "#d62728"}
#: hours of history an alert's chart shows
ALERT_CHART_HOURS = 6.0
#: at most this many charts go with one message (one per scope)
MAX_CHARTS = 4
#: one rendering at a time: matplotlib's font cache and text layout are shared by every figure
#: of the process (the bot's /history and the delivery worker's channels render in threads)
_RENDER = threading.Lock()


@dataclass(frozen=True, slots=True)
class ChartThresholds:
    """Fire thresholds to draw, as (severity, value) pairs: ``margin_ratio`` fractions
    (0.8 = 80 %), ``liquidation_distance`` fractions of the price. ``source`` says where they
    came from (shown in the chart's footer)."""

    margin_ratio: tuple[tuple[str, float], ...] = ()
    liquidation_distance: tuple[tuple[str, float], ...] = ()
    source: str = ""


class ChartSpec(msgspec.Struct, frozen=True):
    """One chart to attach: ``scope`` (``venue:account/scope``), the ``thresholds`` that
    applied when the alert was built, and ``hours`` of history before the send time."""

    scope: str
    thresholds: ChartThresholds
    hours: float = ALERT_CHART_HOURS
    #: the chart's heading (e.g. the account's label and the short scope); "" for ``scope``
    title: str = ""


_SPECS = msgspec.json.Decoder(list[ChartSpec])


def encode_specs(specs: Sequence[ChartSpec]) -> str:
    """``specs`` as the outbox's ``attach`` text (a JSON list)."""
    return msgspec.json.encode(list(specs)).decode()


def decode_specs(text: str) -> list[ChartSpec]:
    """The specs of an outbox ``attach`` text. Raises ValueError when it is not one."""
    try:
        return _SPECS.decode(text)
    except msgspec.DecodeError as exc:
        raise ValueError(f"not a chart list: {exc}") from None


def account_of(scope: str) -> str | None:
    """``"venue:account"`` of a scope string ``venue:account/scope`` (accounts may contain
    ``/``, as dYdX's ``ADDRESS/N``; isolated symbols too), None when it is not one."""
    m = _SCOPE.match(scope)
    return m.group("account") if m else None


def thresholds_from_rules(
    rules: AlertRules | None, account: str | None, source: str = ""
) -> ChartThresholds:
    """The margin-ratio and liquidation-distance fire levels that apply to ``account``
    (``"venue:account"``; its per-account override if any); the defaults when ``rules`` is
    None."""
    if rules is None:
        rules = AlertRules.default()
        source = source or "default thresholds"

    def levels(kind: RuleKind) -> tuple[tuple[str, float], ...]:
        rule = rules.rule(kind, account)
        if rule is None:
            return ()
        return tuple((str(lv.severity), lv.fire) for lv in rule.levels_for(None))

    return ChartThresholds(
        levels(RuleKind.MARGIN_RATIO), levels(RuleKind.LIQUIDATION_DISTANCE), source
    )


def _matplotlib_home(env: MutableMapping[str, str]) -> None:
    """Under systemd (``$STATE_DIRECTORY`` set, home read-only) give matplotlib a config and
    font-cache directory in the state directory, so the cache is built once, not at every
    start in a temporary directory with a warning. An explicit ``MPLCONFIGDIR`` wins."""
    state = env.get("STATE_DIRECTORY", "").split(":")[0]
    if state and "MPLCONFIGDIR" not in env:
        env["MPLCONFIGDIR"] = str(Path(state) / "matplotlib")


def _pct(x: float | None) -> float:
    return math.nan if x is None or not math.isfinite(x) else x * 100.0


def render_png(
    scope: str,
    samples: Sequence[history.Sample],
    thresholds: ChartThresholds,
    *,
    width: int = WIDTH,
    height: int = HEIGHT,
    title: str = "",
) -> bytes:
    """The chart as PNG bytes (``width`` × ``height`` pixels). ``samples`` in time order;
    an empty sequence gives a picture that says there are no samples. ``title``: the heading
    ("" for ``scope``), drawn as written (a ``$`` in a label or a venue's coin name is never
    read as math). Raises ValueError for a size below 200 × 150 pixels. Renderings are
    serialised (one at a time per process)."""
    if width < 200 or height < 150:
        raise ValueError("a chart needs at least 200 × 150 pixels")
    with _RENDER:
        return _render_png(title or scope, samples, thresholds, width, height)


def _render_png(
    scope: str,
    samples: Sequence[history.Sample],
    thresholds: ChartThresholds,
    width: int,
    height: int,
) -> bytes:
    _matplotlib_home(os.environ)
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415 -- lazy
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter  # noqa: PLC0415
    from matplotlib.figure import Figure  # noqa: PLC0415

    dpi = 100
    fig = Figure(figsize=(width / dpi, height / dpi), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1, sharex=True)
    times = [datetime.fromtimestamp(s.ts, UTC) for s in samples]
    ratio = [_pct(s.margin_ratio) for s in samples]
    dist = [_pct(s.nearest_liq) for s in samples]
    # equity ≤ 0 makes the ratio unknown: the scope is liquidatable, mark it, do not hide it
    broke = [
        t for t, s in zip(times, samples, strict=True) if s.equity is not None and s.equity <= 0
    ]

    # parse_math=False: "$" in a name is text, never mathtext (which raises on bad math)
    top.set_title(f"{scope}  (UTC)", fontsize=11, loc="left", parse_math=False)
    top.plot(times, ratio, color="black", linewidth=1.4, marker="." if len(samples) < 40 else "")
    top.axhline(100.0, color=_COLOURS["critical"], linewidth=1.2, linestyle="-")
    top.text(
        0.995,
        100.0,
        "liquidation 100 %",
        transform=top.get_yaxis_transform(),
        ha="right",
        va="bottom",
        fontsize=8,
        color=_COLOURS["critical"],
    )
    for severity, fire in thresholds.margin_ratio:
        _threshold(top, fire * 100.0, severity)
    finite = [v for v in ratio if math.isfinite(v)]
    # past liquidation the ratio can run to thousands of %: the scale stops at RATIO_CAP
    top.set_ylim(0.0, min(max([105.0, *finite]) * 1.05, RATIO_CAP))
    if broke:
        top.plot(
            broke,
            [top.get_ylim()[1] * 0.97] * len(broke),
            linestyle="",
            marker="x",
            color=_COLOURS["critical"],
            label="equity ≤ 0",
        )
        top.legend(loc="upper left", fontsize=8)
    top.set_ylabel("margin ratio %")
    top.grid(True, alpha=0.3)

    bottom.plot(
        times, dist, color="#0b5394", linewidth=1.4, marker="." if len(samples) < 40 else ""
    )
    for severity, fire in thresholds.liquidation_distance:
        _threshold(bottom, fire * 100.0, severity)
    finite = [v for v in dist if math.isfinite(v)]
    levels = [f * 100.0 for _, f in thresholds.liquidation_distance]
    bottom.set_ylim(0.0, max([*finite, *levels, 1.0]) * 1.15)
    bottom.set_ylabel("nearest liq. distance %")
    bottom.grid(True, alpha=0.3)
    locator = AutoDateLocator()  # type: ignore[no-untyped-call]  # matplotlib.dates is untyped
    bottom.xaxis.set_major_locator(locator)
    bottom.xaxis.set_major_formatter(ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]

    if not samples:
        top.text(
            0.5,
            0.5,
            "no samples in this period",
            transform=top.transAxes,
            ha="center",
            va="center",
            fontsize=12,
        )
    else:
        first, last = samples[0].ts, samples[-1].ts
        foot = f"{len(samples)} samples, {_iso(first)} – {_iso(last)}" + (
            f"; {thresholds.source}" if thresholds.source else ""
        )
        fig.supxlabel(foot, fontsize=8, color="#555555")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": "monitor"})
    return buf.getvalue()


def _threshold(ax: Axes, y: float, severity: str) -> None:
    colour = _COLOURS.get(severity, "#777777")
    ax.axhline(y, color=colour, linewidth=1.0, linestyle="--")
    ax.text(
        0.005,
        y,
        f"{severity} {y:g} %",
        transform=ax.get_yaxis_transform(),
        ha="left",
        va="bottom",
        fontsize=8,
        color=colour,
        bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1.0},
    )


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M")


async def scope_chart(
    store: Store,
    scope: str,
    *,
    since: float,
    thresholds: ChartThresholds,
    width: int = WIDTH,
    height: int = HEIGHT,
    title: str = "",
) -> bytes | None:
    """PNG of ``scope``'s samples taken at or after ``since`` (epoch s); None when there are
    none. Rendering runs in a worker thread, off the event loop. ``title`` as for
    :func:`render_png`."""
    samples = await history.read_history(store, scope, since)
    if not samples:
        return None
    return await asyncio.to_thread(
        render_png, scope, samples, thresholds, width=width, height=height, title=title
    )


async def chart_attachment(
    store: Store,
    scope: str,
    directory: Path,
    *,
    since: float,
    thresholds: ChartThresholds,
    title: str = "",
) -> Path | None:
    """Write ``scope``'s chart to a new PNG file in ``directory`` and return its path, for
    apprise (``await apprise.Apprise.async_notify(..., attach=str(path))``: Telegram, email,
    ntfy, Pushover and json:// carry it); None when the scope has no samples since ``since``.
    The caller deletes the file once the notification is sent."""
    png = await scope_chart(store, scope, since=since, thresholds=thresholds, title=title)
    if png is None:
        return None
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", scope)[:80]

    def write() -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(
            dir=directory, prefix=f"{safe}-", suffix=".png", delete=False
        ) as fh:
            fh.write(png)
        return Path(fh.name)

    return await asyncio.to_thread(write)


async def render_attachments(
    store: Store, specs: Sequence[ChartSpec], directory: Path, now: float
) -> list[Path]:
    """One PNG file in ``directory`` per spec whose scope has samples in the ``hours`` before
    ``now`` (epoch s), at most :data:`MAX_CHARTS`; rendering and writing run in worker
    threads. Errors propagate (the caller sends the text alone); the caller deletes
    ``directory`` afterwards."""
    out: list[Path] = []
    seen: set[str] = set()
    for spec in specs:
        if spec.scope in seen or len(out) >= MAX_CHARTS:
            continue
        seen.add(spec.scope)
        path = await chart_attachment(
            store,
            spec.scope,
            directory,
            since=now - spec.hours * 3600.0,
            thresholds=spec.thresholds,
            title=spec.title,
        )
        if path is not None:
            out.append(path)
    return out
