"""Two accounts whose ids differ only in case (manual names are case-sensitive: ``bybit:A``
and ``bybit:a``): a label that is one's id is refused on the other, whichever comes first.

``monitor mute``/``history``/``status`` compare a label in any case
(:meth:`monitor.commands._store.Names.by_label`): account ``bybit:a`` labelled ``bybit:A``
takes ``monitor mute bybit:A`` for itself and silences the wrong account. The check kept one
account per case-folded id (the last), so when the labelled account came last it found only
itself ("its own id") and let the label through. A label equal to its own id is refused
too when a case twin exists: ``monitor mute bybit:A`` would find the label ``bybit:a``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from monitor.commands._store import Names
from monitor.config import Config, load_config
from monitor.errors import ConfigError


def _manual(name: str, label: str | None) -> str:
    text = f"[[accounts]]\nvenue = 'bybit'\nname = '{name}'\ncross_collateral = 1\n"
    return text + (f"label = {json.dumps(label)}\n" if label is not None else "")


def _load(tmp_path: Path, toml: str) -> Config:
    path = tmp_path / "monitor.toml"
    path.write_text("[venues.bybit]\n" + toml, encoding="utf-8")
    return load_config(path, env={"HOME": "/home/u"})


@pytest.mark.parametrize(
    ("entries", "field", "other"),
    [
        # the labelled account last: it used to be taken for the owner of the id
        ((("A", None), ("a", "bybit:A")), "accounts[1].label", "accounts[0] (bybit:A)"),
        ((("a", None), ("A", "bybit:a")), "accounts[1].label", "accounts[0] (bybit:a)"),
        ((("a", None), ("A", "bybit:a/cross")), "accounts[1].label", "accounts[0] (bybit:a)"),
        # the labelled account first (refused before too)
        ((("a", "bybit:A"), ("A", None)), "accounts[0].label", "accounts[1] (bybit:A)"),
    ],
)
def test_a_label_equal_to_a_case_twins_id_is_refused_whichever_comes_first(
    tmp_path: Path, entries: tuple[tuple[str, str | None], ...], field: str, other: str
) -> None:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, "".join(_manual(n, lab) for n, lab in entries))
    assert info.value.field == field
    assert other in info.value.problem


def test_a_label_equal_to_its_own_id_is_refused_beside_a_case_twin(tmp_path: Path) -> None:
    # `monitor mute bybit:A` would find the label 'bybit:a' (any case) and silence bybit:a
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, _manual("A", None) + _manual("a", "bybit:a"))
    assert info.value.field == "accounts[1].label"
    assert "is the id of accounts[0] (bybit:A)" in info.value.problem
    # without a twin, its own id stays allowed; by_label finds it either way
    (tmp_path / "ok").mkdir()
    cfg = _load(tmp_path / "ok", _manual("B", None) + _manual("a", "bybit:a"))
    assert [str(k) for k in Names.of(cfg).by_label("BYBIT:A")] == ["bybit:a"]
