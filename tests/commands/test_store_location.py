"""Where the read-only commands find the store when told nothing: the admin's own default, or,
when that does not exist, the store the systemd unit writes."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from monitor.commands import _store


def args() -> argparse.Namespace:
    return argparse.Namespace(store=None, config=None)


def test_without_a_store_of_its_own_the_admin_reads_the_units_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    unit = tmp_path / "var" / "lib" / "monitor" / "monitor.sqlite3"
    unit.parent.mkdir(parents=True)
    unit.write_bytes(b"")
    monkeypatch.setattr(_store, "UNIT_STORE", unit)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    found = _store.locate(args())
    assert (found.path, found.origin) == (unit, "the systemd unit's store")


def test_the_admins_own_store_wins_when_it_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    unit = tmp_path / "unit.sqlite3"
    unit.write_bytes(b"")
    own = tmp_path / "home" / ".local" / "state" / "monitor" / "monitor.sqlite3"
    own.parent.mkdir(parents=True)
    own.write_bytes(b"")
    monkeypatch.setattr(_store, "UNIT_STORE", unit)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    found = _store.locate(args())
    assert (found.path, found.origin) == (own, "default location")
