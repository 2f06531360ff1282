"""The label check reads a label with a ``:`` as a name (``parse_user``) only when the part
before the ``:`` is a venue (or an old spelling of one) of a configured account, or ``feed``:
a label of any other head names no configured account and is allowed without parsing it
(~1 s of ``load_config`` at 100k accounts labelled ``desk:…``). These pin that the shortcut
changes no verdict: every spelling of a configured venue, and a feed of any venue, is still
read and refused; other heads stay allowed. (They pass on the code before the shortcut too:
they guard it; its gain is measured in-process, not here.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_config_labels import _error, _load, _manual


@pytest.mark.parametrize(
    "label",
    [
        "bybit:a",
        "BYBIT:a",
        "Bybit :a",  # blanks around the venue: read as bybit
        "bybit:a/cross",
        "bybit:A",  # the id in another case
    ],
)
def test_a_label_headed_by_a_configured_venue_in_any_spelling_is_still_refused(
    tmp_path: Path, label: str
) -> None:
    err = _error(tmp_path, _manual("a", None) + _manual("b", label))
    assert err.field == "accounts[1].label"
    assert "accounts[0] (bybit:a)" in err.problem


def test_an_old_venue_spelling_in_capitals_is_still_read_as_the_venue(tmp_path: Path) -> None:
    toml = (
        '[venues.binanceusdm]\n[[accounts]]\nid = "binanceusdm:main"\napi_key = "${K}"\n'
        'secret = "${S}"\n' + _manual("b", "BINANCE_USDM:main")
    )
    err = _error(tmp_path, toml)
    assert err.field == "accounts[1].label"
    assert "(binanceusdm:main)" in err.problem


@pytest.mark.parametrize("label", ["feed:okx", "FEED:okx", "Feed:bybit/ticker"])
def test_a_feed_of_any_venue_is_still_refused(tmp_path: Path, label: str) -> None:
    """``feed:okx`` names a feed though no okx account is configured."""
    err = _error(tmp_path, _manual("a", label))
    assert err.field == "accounts[0].label"
    assert "feed" in err.problem


@pytest.mark.parametrize(
    "label", ["okx:a", "desk:a", "binanceusdm:a", "nosuchvenue:a", ":a", "a:", "Bybit"]
)
def test_a_label_headed_by_no_configured_venue_is_allowed(tmp_path: Path, label: str) -> None:
    cfg = _load(tmp_path, _manual("a", None) + _manual("b", label))
    assert cfg.accounts[1].label == label
