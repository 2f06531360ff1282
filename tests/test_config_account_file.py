"""``[[accounts]] file = "book.json"``: manual accounts from a JSON list, for books too
large to write as TOML; errors name the book file and the entry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.config import AccountKind, Config, _Loader, load_config
from monitor.errors import ConfigError, InputError

ENV = {"HOME": "/home/u"}

TOML_ACCOUNT = """
[[accounts]]
venue = "bybit"
name = "uta"
label = "desk"
cross_collateral = 10000

[[accounts.positions]]
symbol = "BTCUSDT"
size = 0.5
entry_price = 60000
maintenance = { rate = 0.005 }

[[accounts.positions]]
symbol = "SOLUSDT"
size = -10
entry_price = 150
margin_mode = "isolated"
isolated_margin = 200
"""

JSON_ACCOUNT: dict[str, Any] = {
    "venue": "bybit",
    "name": "uta",
    "label": "desk",
    "cross_collateral": 10000,
    "positions": [
        {"symbol": "BTCUSDT", "size": 0.5, "entry_price": 60000, "maintenance": {"rate": 0.005}},
        {
            "symbol": "SOLUSDT",
            "size": -10,
            "entry_price": 150,
            "margin_mode": "isolated",
            "isolated_margin": 200,
        },
    ],
}


def _load(tmp_path: Path, toml: str, book: Any = None, raw: bytes | None = None) -> Config:
    if raw is not None:
        (tmp_path / "book.json").write_bytes(raw)
    elif book is not None:
        (tmp_path / "book.json").write_text(json.dumps(book), encoding="utf-8")
    path = tmp_path / "monitor.toml"
    path.write_text(toml, encoding="utf-8")
    return load_config(path, env=ENV)


def _error(tmp_path: Path, toml: str, book: Any = None, raw: bytes | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, toml, book, raw)
    return info.value


def test_an_account_file_reads_as_the_same_accounts_as_toml(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    from_toml = _load(tmp_path / "a", "[venues.bybit]\n" + TOML_ACCOUNT)
    other = {**JSON_ACCOUNT, "name": "second", "label": None, "positions": []}
    from_file = _load(
        tmp_path / "b",
        '[venues.bybit]\n[[accounts]]\nfile = "book.json"\n',
        [JSON_ACCOUNT, other],
    )
    first, second = from_file.accounts
    assert first == from_toml.accounts[0]
    assert first.kind is AccountKind.MANUAL and first.feed == "bybit" and first.label == "desk"
    assert second.account == "second" and second.snapshot is not None
    assert second.snapshot.positions == ()


def test_an_account_file_is_relative_to_the_configuration_and_mixes_with_toml(
    tmp_path: Path,
) -> None:
    (tmp_path / "books").mkdir()
    (tmp_path / "books" / "b.json").write_text(
        json.dumps([{**JSON_ACCOUNT, "name": "x", "label": "x"}])
    )
    cfg = _load(
        tmp_path,
        '[venues.bybit]\n[[accounts]]\nfile = "books/b.json"\n' + TOML_ACCOUNT,
    )
    assert [a.account for a in cfg.accounts] == ["x", "uta"]


@pytest.mark.parametrize(
    ("book", "raw", "field", "words"),
    [
        (None, b"[{", None, "not valid JSON"),
        ({"venue": "bybit"}, None, None, "expected a JSON list of manual accounts"),
        ([JSON_ACCOUNT, 7], None, "[1]", "expected a manual account"),
        (
            [
                JSON_ACCOUNT,
                {
                    **JSON_ACCOUNT,
                    "name": "b",
                    "positions": [{"symbol": "X", "size": "ten", "entry_price": 1}],
                },
            ],
            None,
            "[1].positions[0].size",
            "not a number",
        ),
        ([{**JSON_ACCOUNT, "venu": "bybit"}], None, "[0].venu", "venue"),
        ([{**JSON_ACCOUNT, "venue": "bybitt"}], None, "[0].venue", "did you mean 'bybit'?"),
        ([JSON_ACCOUNT, JSON_ACCOUNT], None, "[1]", "the same account as"),
        # a key written twice in one object (JSON readers keep the last one silently)
        (
            None,
            b'[{"venue":"bybit","name":"a","cross_collateral":1,"name":"b"}]',
            "[0].name",
            "the key 'name' is written twice in one object",
        ),
        (
            None,
            b'[{"venue":"bybit","name":"a","cross_collateral":1},'
            b'{"venue":"bybit","name":"b","cross_collateral":1,"positions":[{"symbol":"X",'
            b'"size":1,"entry_price":2},{"symbol":"Y","size":1,"entry_price":2,"size" :-1}]}]',
            "[1].positions[1].size",
            "the key 'size' is written twice",
        ),
        (
            None,
            b'[{"venue":"bybit","name":"a","n\\u0061me":"b","cross_collateral":1}]',
            "[0].name",
            "written twice",
        ),
    ],
)
def test_a_bad_account_file_names_the_file_the_entry_and_the_field(
    tmp_path: Path, book: Any, raw: bytes | None, field: str | None, words: str
) -> None:
    err = _error(tmp_path, '[venues.bybit]\n[[accounts]]\nfile = "book.json"\n', book, raw)
    assert err.source == str(tmp_path / "book.json")
    assert err.field == field
    assert words in str(err)


def test_a_missing_account_file_names_the_configuration_key(tmp_path: Path) -> None:
    err = _error(tmp_path, '[[accounts]]\nfile = "nope.json"\n')
    assert err.source == str(tmp_path / "monitor.toml")
    assert err.field == "accounts[0].file"
    assert "no such file" in str(err) and "nope.json" in str(err)


def test_an_account_in_a_file_and_in_toml_is_refused_naming_both(tmp_path: Path) -> None:
    err = _error(
        tmp_path,
        "[venues.bybit]\n" + TOML_ACCOUNT + '\n[[accounts]]\nfile = "book.json"\n',
        [JSON_ACCOUNT],
    )
    assert err.source == str(tmp_path / "book.json") and err.field == "[0]"
    # the TOML entry is named with its file: "accounts[0]" alone reads as book.json's
    assert f"the same account as {tmp_path / 'monitor.toml'}: accounts[0]" in str(err)


def test_a_file_entry_takes_no_other_key(tmp_path: Path) -> None:
    err = _error(tmp_path, '[[accounts]]\nfile = "book.json"\nname = "x"\n', [])
    assert err.field == "accounts[0].name"


def test_an_account_file_in_another_encoding_is_refused_not_a_traceback(tmp_path: Path) -> None:
    latin1 = '[{"venue": "bybit", "name": "caf\u00e9", "cross_collateral": 1}]'.encode("latin-1")
    err = _error(tmp_path, '[venues.bybit]\n[[accounts]]\nfile = "book.json"\n', raw=latin1)
    assert err.source == str(tmp_path / "book.json") and err.field is None
    assert "not UTF-8 text" in str(err)


def test_an_account_file_with_a_byte_order_mark_reads(tmp_path: Path) -> None:
    # what Windows PowerShell's `Out-File -Encoding utf8` writes; RFC 8259 lets a parser skip it
    bom = b"\xef\xbb\xbf" + json.dumps([JSON_ACCOUNT]).encode()
    cfg = _load(tmp_path, '[venues.bybit]\n[[accounts]]\nfile = "book.json"\n', raw=bom)
    assert [a.account for a in cfg.accounts] == ["uta"]


def test_an_empty_account_file_is_no_accounts(tmp_path: Path) -> None:
    cfg = _load(tmp_path, '[venues.bybit]\n[[accounts]]\nfile = "book.json"\n', [])
    assert cfg.accounts == ()


def test_a_directory_as_account_file_is_refused_at_its_key(tmp_path: Path) -> None:
    (tmp_path / "book.json").mkdir()
    err = _error(tmp_path, '[[accounts]]\nfile = "book.json"\n')
    assert err.field == "accounts[0].file" and "Is a directory" in str(err)


@pytest.mark.parametrize(
    ("written", "where"),
    [("~/book.json", "home/book.json"), ("~", "home"), ("~x/book.json", "cfg/~x/book.json")],
)
def test_a_tilde_is_the_home_directory_only_before_a_slash(
    tmp_path: Path, written: str, where: str
) -> None:
    # "~x/book.json" is not $HOME + "x/book.json" (a sibling of the home directory)
    (tmp_path / "cfg").mkdir()
    err = _error_env(tmp_path, f'[[accounts]]\nfile = "{written}"\n')
    assert f"cannot read {tmp_path / where}:" in str(err)


def _error_env(tmp_path: Path, toml: str) -> ConfigError:
    path = tmp_path / "cfg" / "monitor.toml"
    path.write_text(toml, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={"HOME": str(tmp_path / "home")})
    return info.value


# -- the book is decoded one entry at a time (memory); the whole-list reading is the reference


def _reference(tmp_path: Path, data: bytes) -> Any:
    """What the whole-list reading (``_Loader.book_entries_reference``) makes of ``data``:
    the accounts it builds, or the ConfigError/InputError it raises."""
    file = tmp_path / "book.json"
    loader = _Loader(str(file), tmp_path / "monitor.toml", ENV)
    venues = load_config(_write(tmp_path, "[venues.bybit]\n"), env=ENV).venues
    try:
        return [acct for _, acct in loader.book_entries_reference(data, dict(venues))]
    except (ConfigError, InputError) as exc:
        return ConfigError(exc.source, exc.field, str(exc.problem))


def _write(tmp_path: Path, toml: str) -> Path:
    path = tmp_path / "monitor.toml"
    path.write_text(toml, encoding="utf-8")
    return path


_ENTRY_VARIANTS: list[Any] = [
    JSON_ACCOUNT,
    {**JSON_ACCOUNT, "name": "b", "positions": [{"symbol": "X", "size": "ten", "entry_price": 1}]},
    {**JSON_ACCOUNT, "name": "c", "cross_collateral": True},
    {**JSON_ACCOUNT, "name": "  "},
    {**JSON_ACCOUNT, "venu": "bybit"},
    {"venue": "bybit", "name": "d", "cross_collateral": 5, "positions": []},
    {"venue": "bybit", "name": "e", "cross_collateral": 5, "positions": [{"symbol": "X"}]},
    7,
    "text",
    [],
]
# raw JSON an entry may be written as: valid ones, and ones only a full decode refuses (a
# number out of range, a string that is not UTF-8) after an entry that is valid JSON
_RAW_VARIANTS: list[bytes] = [
    b'{"venue":"bybit","name":"f","cross_collateral":1e400}',
    b'{"venue":"bybit","name":"caf\xe9","cross_collateral":1}',
    b'{"venue":"bybit","name":"g","cross_collateral":1,"positions":[{"symbol":"Y",'
    b'"size":2,"entry_price":3,"mark_price":2.5}]}',
    # a key written twice: at the top of the entry, in a position (blanks before the colon),
    # and spelt with an escape
    b'{"venue":"bybit","name":"h","name":"h2","cross_collateral":1}',
    b'{"venue":"bybit","name":"i","cross_collateral":1,"positions":[{"symbol":"Z",'
    b'"size":1,"size" :2,"entry_price":3}]}',
    b'{"venue":"bybit","n\\u0061me":"k","name":"k","cross_collateral":1}',
    # valid, and what a quick count of '":' miscounts: a string starting with ':' or holding
    # an escaped quote and a colon, blanks before colons, one key in two nested objects
    b'{"venue":"bybit","name":"j","label":":j \\":","cross_collateral":1}',
    b'{"venue" : "bybit", "name"\n: "l", "cross_collateral" :1, "positions": [{"symbol" :'
    b' "L", "size": 1, "entry_price": 2, "maintenance": {"rate": 0.01}}]}',
]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    picks=st.lists(
        st.integers(0, len(_ENTRY_VARIANTS) + len(_RAW_VARIANTS) - 1),
        min_size=0,
        max_size=5,
        unique=True,
    )
)
def test_a_book_read_entry_by_entry_is_the_whole_list_reading(
    tmp_path: Path, picks: list[int]
) -> None:
    # the same accounts in the same order, or the same error (file, entry, field, words),
    # whatever mix of good and bad entries the book holds (each variant names its own
    # account: the check for an account named twice spans files and is not the reading's)
    parts = [
        json.dumps(_ENTRY_VARIANTS[i]).encode()
        if i < len(_ENTRY_VARIANTS)
        else _RAW_VARIANTS[i - len(_ENTRY_VARIANTS)]
        for i in picks
    ]
    data = b"[" + b",".join(parts) + b"]"
    (tmp_path / "book.json").write_bytes(data)
    want = _reference(tmp_path, data)
    path = _write(tmp_path, '[venues.bybit]\n[[accounts]]\nfile = "book.json"\n')
    try:
        got: Any = list(load_config(path, env=ENV).accounts)
    except ConfigError as exc:
        got = exc
    if isinstance(want, ConfigError):
        assert isinstance(got, ConfigError)
        assert (got.source, got.field, got.problem) == (want.source, want.field, want.problem)
    else:
        assert got == want


def test_a_semantic_error_before_a_number_out_of_range_reports_the_json_error(
    tmp_path: Path,
) -> None:
    # entry [0] is valid JSON with a bad field; entry [1] holds a number no float can hold:
    # the whole-list reading refuses the JSON first, and so does the entry-by-entry one
    data = (
        b'[{"venue":"bybit","name":"a","cross_collateral":"x"},'
        b'{"venue":"bybit","name":"b","cross_collateral":1e400}]'
    )
    err = _error(tmp_path, '[venues.bybit]\n[[accounts]]\nfile = "book.json"\n', raw=data)
    assert err.field is None and "not valid JSON" in str(err) and "out of range" in str(err)


def test_a_book_entry_by_entry_builds_what_the_whole_list_reading_builds(tmp_path: Path) -> None:
    # (the last two: valid books a quick count of keys miscounts, read without a fallback)
    book = [JSON_ACCOUNT, {**JSON_ACCOUNT, "name": "second", "venue": "bybit"}]
    data = json.dumps(book).encode()[:-1] + b"," + b",".join(_RAW_VARIANTS[-2:]) + b"]"
    venues = dict(load_config(_write(tmp_path, "[venues.bybit]\n"), env=ENV).venues)
    file = str(tmp_path / "book.json")
    fast = _Loader(file, tmp_path / "monitor.toml", ENV).book_entries(data, venues)
    ref = _Loader(file, tmp_path / "monitor.toml", ENV).book_entries_reference(data, venues)
    assert fast == ref and len(fast) == 4


def test_a_key_written_twice_is_refused_by_both_readings_and_named_by_the_reference(
    tmp_path: Path,
) -> None:
    # the entry-by-entry reading refuses the entry (any failure hands the book to the
    # reference reading, whose error is reported): it must not keep the last "size"
    data = (
        b'[{"venue":"bybit","name":"a","cross_collateral":1,"positions":[{"symbol":"X",'
        b'"size":1,"entry_price":2,"maintenance":{"rate":0.01,"rate":0.5}}]}]'
    )
    venues = dict(load_config(_write(tmp_path, "[venues.bybit]\n"), env=ENV).venues)
    file = str(tmp_path / "book.json")
    with pytest.raises(ValueError, match="written twice"):
        _Loader(file, tmp_path / "monitor.toml", ENV).book_entries(data, venues)
    with pytest.raises(ConfigError) as info:
        _Loader(file, tmp_path / "monitor.toml", ENV).book_entries_reference(data, venues)
    assert (info.value.source, info.value.field) == (file, "[0].positions[0].maintenance.rate")
    assert "the key 'rate' is written twice in one object" in info.value.problem


def test_equal_keys_in_different_objects_are_not_a_repeat(tmp_path: Path) -> None:
    # "symbol" in each position, "rate" in an entry's position and its maintenance: each
    # object names each key once
    book = [
        {
            **JSON_ACCOUNT,
            "positions": [
                {"symbol": "A", "size": 1, "entry_price": 2, "maintenance": {"rate": 0.01}},
                {"symbol": "B", "size": 1, "entry_price": 2, "fee_rate": 0.001},
            ],
        }
    ]
    data = json.dumps(book, indent=2).encode()  # indented: a newline after many quotes
    cfg = _load(tmp_path, '[venues.bybit]\n[[accounts]]\nfile = "book.json"\n', raw=data)
    [acct] = cfg.accounts
    assert acct.snapshot is not None and len(acct.snapshot.positions) == 2


def test_positions_on_one_instrument_share_one_mark_price_object(tmp_path: Path) -> None:
    # a book gives each position on an instrument the instrument's mark: 1,000 positions
    # hold one float object per distinct price (32 bytes a position saved), equal values
    book = [
        {
            "venue": "bybit",
            "name": f"a{i}",
            "cross_collateral": 1000,
            "positions": [
                {"symbol": "BTCUSDT", "size": 0.1, "entry_price": 60000 + i, "mark_price": 61000.5},
                {"symbol": "ETHUSDT", "size": -1, "entry_price": 3000, "oracle_price": 3001.25},
            ],
        }
        for i in range(1_000)
    ]
    cfg = _load(tmp_path, '[venues.bybit]\n[[accounts]]\nfile = "book.json"\n', book)
    positions = [p for a in cfg.accounts if a.snapshot for p in a.snapshot.positions]
    btc = [p for p in positions if p.symbol == "BTCUSDT"]
    eth = [p for p in positions if p.symbol == "ETHUSDT"]
    assert len(btc) == len(eth) == 1_000
    assert {p.mark_price for p in btc} == {61000.5}
    assert len({id(p.mark_price) for p in btc}) == 1
    assert {p.oracle_price for p in eth} == {3001.25}
    assert len({id(p.oracle_price) for p in eth}) == 1
    # entry prices are each their own value
    assert len({p.entry_price for p in btc}) == 1_000
    # and the venue is one string for every account, not one each
    venues = [a.snapshot.venue for a in cfg.accounts if a.snapshot]
    assert set(venues) == {"bybit"} and len({id(v) for v in venues}) == 1


def test_shared_price_returns_an_equal_float_and_forgets_past_its_bound() -> None:
    from monitor import snapshot

    a = float("61000.5")
    b = float("61000.5")
    assert a is not b
    assert snapshot.shared_price(a) is snapshot.shared_price(b)
    assert snapshot.shared_price(None) is None
    for i in range(snapshot._PRICES_MAX + 10):
        snapshot.shared_price(1.0 + i)
    assert len(snapshot._PRICES) <= snapshot._PRICES_MAX


def test_an_account_key_is_built_once_and_does_not_take_part_in_equality(tmp_path: Path) -> None:
    # the engine's account lists, sets and reload diffs hold the configuration's keys: one
    # key object per account, equal to a key built from its venue and name
    from monitor.model.ids import AccountKey

    one = _load(tmp_path, '[venues.bybit]\n[[accounts]]\nfile = "book.json"\n', [JSON_ACCOUNT])
    two = _load(tmp_path, '[venues.bybit]\n[[accounts]]\nfile = "book.json"\n', [JSON_ACCOUNT])
    a, b = one.accounts[0], two.accounts[0]
    assert a.key is a.key
    assert a.key == AccountKey("bybit", "uta") == b.key and a.key is not b.key
    assert a == b and hash(a) == hash(b)
    assert repr(a).endswith("portfolio_margin=False)") and " _key=" not in repr(a)


def test_a_book_or_config_nested_too_deeply_is_a_config_error_not_a_traceback(
    tmp_path: Path,
) -> None:
    deep = "[" * 20_000 + "]" * 20_000
    (tmp_path / "book.json").write_text(deep, encoding="utf-8")
    cfg = tmp_path / "monitor.toml"
    cfg.write_text('[venues.bybit]\n[[accounts]]\nfile = "book.json"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(cfg, env={})
    assert info.value.source == str(tmp_path / "book.json")
    assert "nested too deeply" in info.value.problem
    cfg.write_text("x = " + "[" * 20_000 + "]" * 20_000 + "\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(cfg, env={})
    assert info.value.source == str(cfg) and "nested too deeply" in info.value.problem
