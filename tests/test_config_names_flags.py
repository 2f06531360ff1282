"""A subdivision flag (🏴 England, Scotland, Wales: the black flag, tag letters, a cancel tag)
is an emoji sequence like those the zero-width joiner makes: a name or label holding one is
kept. Tag characters anywhere else (invisible text smuggled into a name) are still refused,
naming the code point."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.config import parse_config
from monitor.errors import ConfigError

ENV = {"HOME": "/home/u"}
#: U+1F3F4 WAVING BLACK FLAG, the tags g b s c t, U+E007F CANCEL TAG
SCOTLAND = "\U0001f3f4\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f"
WALES = "\U0001f3f4\U000e0067\U000e0062\U000e0077\U000e006c\U000e0073\U000e007f"


def _parse(name: str) -> object:
    doc = {
        "venues": {"bybit": {}},
        "accounts": [{"venue": "bybit", "name": name, "label": name, "cross_collateral": 1}],
    }
    return parse_config(doc, Path("monitor.toml"), env=ENV)


@pytest.mark.parametrize("name", [f"{SCOTLAND} Edinburgh desk", f"Cardiff {WALES}", SCOTLAND])
def test_a_subdivision_flag_in_a_name_and_label_is_kept(name: str) -> None:
    [acct] = _parse(name).accounts  # type: ignore[attr-defined]
    assert acct.account == acct.label == name


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("desk\U000e0041\U000e0042", "U+E0041"),  # tag letters smuggling "AB", no flag
        ("\U000e0067\U000e0062\U000e007f desk", "U+E0067"),  # a flag's tags without the flag
        ("\U0001f3f4\U000e0067\U000e0062 desk", "U+E0067"),  # no cancel tag: not a flag
        (f"{SCOTLAND}\U000e0041", "U+E0041"),  # a tag after a whole flag
    ],
)
def test_tag_characters_outside_a_flag_are_still_refused(name: str, code: str) -> None:
    with pytest.raises(ConfigError) as info:
        _parse(name)
    assert info.value.field == "accounts[0].name"
    assert code in info.value.problem
