"""monitor.fmt and monitor.thin: numbers readable at any magnitude; thinning keeps extremes."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor import fmt
from monitor.thin import thin_extremes


def test_tiny_entry_and_liquidation_prices_are_distinguishable() -> None:
    # the case: 0.000013 and 0.0000104 used to print as 0.000013 and 0.000010
    assert fmt.price(0.000013) == "0.000013"
    assert fmt.price(0.00001043478) == "0.0000104348"  # 6 significant digits
    assert fmt.price(0.000010) == "0.00001"
    assert fmt.price(0.000013) != fmt.price(0.0000104)


def test_large_sizes_never_print_in_exponent_form() -> None:
    assert fmt.size(4e7) == "40,000,000"
    assert fmt.size(-4e7) == "-40,000,000"
    assert fmt.size(123456789012.0) == "123,456,789,012"  # integer digits are never cut
    assert fmt.size(0.0015) == "0.0015"
    assert "e" not in fmt.size(1e-9)
    assert fmt.size(1e-9) == "0.000000001"


def test_prices_keep_six_significant_digits() -> None:
    assert fmt.price(97123.456) == "97,123.5"
    assert fmt.price(40707.0707) == "40,707.1"
    assert fmt.price(2.5) == "2.5"
    assert fmt.price(9.9999995) == "10"  # rounding carries into a new digit
    assert fmt.price(None) == "—"
    assert fmt.price(math.nan) == "—"
    assert fmt.price(math.inf) == "—"
    assert fmt.num(0.0) == "0"
    assert fmt.num(5.0, sign=True) == "+5"


@given(
    st.floats(min_value=1e-12, max_value=1e12, allow_nan=False),
    st.integers(min_value=1, max_value=10),
)
def test_num_round_trips_within_its_significant_digits(x: float, sig: int) -> None:
    text = fmt.num(x, sig)
    assert "e" not in text.lower()
    back = float(text.replace(",", ""))
    # sig significant digits: the error is at most half a unit in the last kept place (a tie,
    # such as 2**-14 at 9 digits, is exactly half a unit: allow the float rounding of x itself)
    half_unit = 0.5 * 10 ** (math.floor(math.log10(x)) - sig + 1)
    assert abs(back - x) <= half_unit * (1 + 1e-9) + abs(x) * 1e-15


def test_money_two_decimals_and_small_amounts_keep_digits() -> None:
    assert fmt.money(-3785.454) == "-3,785.45"
    assert fmt.money(1234.5, sign=True) == "+1,234.50"
    assert fmt.money(0.000412) == "0.000412"  # not 0.00
    assert fmt.money(0.0) == "0.00"
    assert fmt.money(None) == "—"


def test_pct_small_nonzero_values_do_not_round_to_zero() -> None:
    assert fmt.pct(0.1234) == "12.34%"
    assert fmt.pct(0.0000123) == "0.0012%"  # 0.00123 % → 2 significant digits
    assert fmt.pct(0.0) == "0.00%"
    assert fmt.pct(0.05, 1, sign=True) == "+5.0%"
    assert fmt.pct(-0.1, 0) == "-10%"
    assert fmt.pct(None) == "—"


def test_runway_prints_in_days_and_hours() -> None:
    # the "224,534.6 h" = 9 355 d 14.6 h; the smaller unit is cut, not rounded up
    assert fmt.hours(224_534.6) == "9,355 d 14 h"
    assert fmt.hours(76.0) == "3 d 4 h"
    assert fmt.hours(48.0) == "2 d"
    assert fmt.hours(5.2) == "5 h 12 min"
    assert fmt.duration(420) == "7 min"
    assert fmt.duration(425) == "7 min 5 s"
    assert fmt.duration(45) == "45 s"
    assert fmt.duration(-3) == "0 s"
    assert fmt.ago(18) == "18 s ago"
    assert fmt.hours(None) == "—"


def test_short_ids_keep_head_and_tail() -> None:
    addr = "0x1111111111111111111111111111111111112222"
    assert fmt.short_id(addr) == "0x1111…2222"
    assert fmt.short_id("main") == "main"
    assert fmt.short_scope(f"hyperliquid:{addr}/cross") == "hyperliquid:0x1111…2222/cross"
    assert fmt.short_scope(f"hyperliquid:{addr}/isolated:SOL") == (
        "hyperliquid:0x1111…2222/isolated:SOL"
    )
    assert fmt.short_scope("binanceusdm:main/cross") == "binanceusdm:main/cross"
    assert fmt.short_scope("nocolon") == "nocolon"


def test_thinning_keeps_the_worst_point_that_even_spacing_drops() -> None:
    # 10 samples with a spike (0.95) at index 4: even spacing to 4 rows (0, 3, 6, 9) drops it;
    # buckets [0,1] [2,3,4] [5,6] [7,8,9] keep each one's highest ratio
    ratios = [0.1, 0.2, 0.3, 0.3, 0.95, 0.3, 0.2, 0.1, 0.1, 0.4]
    kept = thin_extremes(list(enumerate(ratios)), 4, lambda p: p[1])
    assert kept == [(1, 0.2), (4, 0.95), (5, 0.3), (9, 0.4)]


def test_thinning_counts_an_unknown_ratio_as_the_worst() -> None:
    points: list[tuple[int, float | None]] = [(0, 0.5), (1, None), (2, 0.9), (3, 0.1)]
    assert thin_extremes(points, 2, lambda p: p[1]) == [(1, None), (2, 0.9)]


def test_thinning_leaves_short_series_alone_and_refuses_zero_rows() -> None:
    assert thin_extremes([1, 2, 3], 5, float) == [1, 2, 3]
    with pytest.raises(ValueError, match="at least 1"):
        thin_extremes([1, 2], 0, float)


@given(st.lists(st.floats(0, 10), min_size=1, max_size=200), st.integers(1, 50))
def test_thinning_never_loses_the_global_maximum(values: list[float], rows: int) -> None:
    kept = thin_extremes(list(enumerate(values)), rows, lambda p: p[1])
    assert len(kept) == min(rows, len(values))
    assert max(v for _, v in kept) == max(values)
    assert [i for i, _ in kept] == sorted(i for i, _ in kept)


def test_flag_values_are_not_grouped() -> None:
    assert fmt.num(95000.0, 10, group=False) == "95000"
    assert fmt.num(-10.0, 10, sign=True, group=False) == "-10"


# -- the format specs made once: the same text as the specs built per call ------------------


def _num_reference(x: float | None, sig: int = 6, *, sign: bool = False, group: bool = True) -> str:
    if x is None or not math.isfinite(x):
        return fmt.DASH
    if x == 0.0:
        return "+0" if sign else "0"
    mag = math.floor(math.log10(abs(x)))
    places = max(sig - 1 - mag, 0)
    text = f"{abs(x):{',' if group else ''}.{places}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    prefix = "-" if x < 0 else ("+" if sign else "")
    return prefix + text


def _pct_reference(x: float | None, places: int = 2, *, sign: bool = False) -> str:
    if x is None or not math.isfinite(x):
        return fmt.DASH
    p = x * 100.0
    text = f"{p:.{places}f}"
    if p != 0.0 and float(text) == 0.0:
        text = _num_reference(p, 2)
    if sign and p > 0 and not text.startswith("+"):
        text = "+" + text
    return f"{text}%"


@given(
    st.one_of(st.none(), st.floats(), st.sampled_from([5e-324, 1e-300, 1e300, -0.0])),
    st.integers(1, 20),
    st.booleans(),
    st.booleans(),
)
def test_num_is_the_reference_text(x: float | None, sig: int, sign: bool, group: bool) -> None:
    assert fmt.num(x, sig, sign=sign, group=group) == _num_reference(x, sig, sign=sign, group=group)


@given(
    st.one_of(st.none(), st.floats(), st.sampled_from([1e-7, 5e-324, -1e-9])),
    st.integers(0, 45),
    st.booleans(),
)
def test_pct_is_the_reference_text(x: float | None, places: int, sign: bool) -> None:
    assert fmt.pct(x, places, sign=sign) == _pct_reference(x, places, sign=sign)
