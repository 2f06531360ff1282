from __future__ import annotations

import math

import pytest

from monitor.errors import InputError
from monitor.model.events import MarkPrice
from monitor.venues.parsing import (
    Bad,
    lst,
    new_mark_price,
    num,
    obj,
    opt_num,
    parse_error,
    pos_num,
    text,
)


@pytest.mark.parametrize(
    ("value", "expected"), [("1.5", 1.5), (2, 2.0), (-0.25, -0.25), ("1e3", 1000.0)]
)
def test_num_reads_json_numbers_and_decimal_strings(value: object, expected: float) -> None:
    assert num(value, "x") == expected


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("NaN", "finite"),
        ("inf", "finite"),
        ("", "not a number"),
        ("abc", "not a number"),
        (None, "expected a number"),
        (True, "expected a number"),
        ([1], "expected a number"),
        (math.nan, "finite"),
    ],
)
def test_num_refuses_what_is_not_a_finite_number(value: object, problem: str) -> None:
    with pytest.raises(Bad, match=problem):
        num(value, "x")


def test_pos_num_refuses_zero_and_negatives() -> None:
    assert pos_num("0.1", "p") == 0.1
    for bad in ("0", "-1"):
        with pytest.raises(Bad, match="positive"):
            pos_num(bad, "p")


def test_shape_readers() -> None:
    assert opt_num(None, "x") is None
    assert obj({"a": 1}, "o") == {"a": 1}
    assert lst([1], "l") == [1]
    assert text("BTC", "t") == "BTC"
    with pytest.raises(Bad, match="expected an object"):
        obj([], "o")
    with pytest.raises(Bad, match="expected a list"):
        lst({}, "l")
    with pytest.raises(Bad, match="non-empty string"):
        text("", "t")


def test_parse_error_carries_venue_problem_and_truncated_frame() -> None:
    err = parse_error("dydx_v4", Bad("oops"), "x" * 500)
    assert (err.venue, err.problem) == ("dydx_v4", "oops")
    assert err.frame == "x" * 200
    err2 = parse_error("hyperliquid", InputError("src", "a.b", "missing"), b"\xff{")
    assert err2.problem == "src: a.b: missing"


def test_fast_mark_price_equals_the_dataclass_constructor() -> None:
    fast = new_mark_price("dydx_v4", "BTC-USD", 1.5, 1.4, 10.0, 11.0)
    slow = MarkPrice("dydx_v4", "BTC-USD", 1.5, 1.4, 10.0, 11.0)
    assert fast == slow
    assert type(fast) is MarkPrice
    assert hash(fast) == hash(slow)
    with pytest.raises(AttributeError):
        fast.mark = 2.0  # type: ignore[misc]  # still frozen


def test_parsers_and_pure_helpers_import_no_io_library() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import monitor.venues.hyperliquid.parse, monitor.venues.dydx.parse\n"
        "import monitor.venues.backoff, monitor.venues.watchdog, monitor.venues.parsing\n"
        "io = ('asyncio', 'websockets', 'aiohttp', 'ccxt', 'sqlite3', 'aiosqlite', 'apprise',"
        " 'structlog', 'socket')\n"
        "print(','.join(m for m in io if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == ""
