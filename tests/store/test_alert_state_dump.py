"""The alert-state row's JSON, written field by field, is exactly json.dumps' text (the
reference), and reads back as the same record."""

from __future__ import annotations

import enum
import math
from pathlib import Path

from hypothesis import example, given
from hypothesis import strategies as st

from monitor.alerts.engine import AlertDelta, AlertRecord, AlertStatus
from monitor.alerts.rules import Severity
from monitor.store import alert_state
from monitor.store.alert_state import _dump, _dump_reference, _load
from monitor.store.db import open_store

_text = st.text(alphabet=st.sampled_from([*'ab"\\/\x00\x1f\x7f', "é", "\u2028", "💥", "\ud800"]))
_floats = st.one_of(st.floats(), st.sampled_from([math.nan, math.inf, -math.inf, -0.0, 1e-7]))
_opt_floats = st.one_of(st.none(), _floats)


class Odd(enum.IntEnum):
    ONE = 1


_records = st.builds(
    AlertRecord,
    key=_text,
    rule=st.sampled_from(["margin_ratio", "liquidation_distance", "feed_stale"]),
    subject=_text,
    group=_text,
    status=st.sampled_from(AlertStatus),
    severity=st.sampled_from(Severity),
    since=st.one_of(_floats, st.integers(), st.just(Odd.ONE)),  # an int, an int enum
    venue=st.one_of(st.none(), _text),
    symbol=st.one_of(st.none(), _text),
    due=_opt_floats,
    fired_at=_opt_floats,
    last_sent=_opt_floats,
    value=st.one_of(_opt_floats, st.booleans()),
    threshold=_opt_floats,
    peak=_opt_floats,
    detail=_text,
)


@given(_records)
@example(
    AlertRecord(
        "k", "margin_ratio", "s", "g", AlertStatus.FIRING, Severity.CRITICAL, 1.5,
        value=math.inf, peak=-math.inf, threshold=math.nan, detail='"\u202e"',
    )
)  # fmt: skip
def test_dump_is_json_dumps_text(rec: AlertRecord) -> None:
    assert _dump(rec) == _dump_reference(rec)


async def test_saved_row_is_the_reference_text_and_loads_back(tmp_path: Path) -> None:
    rec = AlertRecord(
        "margin_ratio|hyperliquid:0xab/cross", "margin_ratio", "hyperliquid:0xab/cross",
        "hyperliquid:0xab", AlertStatus.FIRING, Severity.CRITICAL, 1_800_000_000.0,
        venue="hyperliquid", value=math.inf, threshold=0.8, peak=math.inf, detail="é\n",
    )  # fmt: skip
    store = await open_store(tmp_path / "m.sqlite3")
    try:
        async with store.transaction() as conn:
            await alert_state.save_delta(conn, AlertDelta(upserts=(rec,)), 1.0)
        async with store.read() as conn:
            [(doc,)] = list(await conn.execute_fetchall("SELECT doc FROM alert_state"))
        assert doc == _dump_reference(rec)
        assert '"value":Infinity' in doc and '"detail":"\\u00e9\\n"' in doc
        loaded = await alert_state.load(store)
        assert loaded.alerts == {rec.key: rec}
        assert _load(doc) == rec
    finally:
        await store.close()
