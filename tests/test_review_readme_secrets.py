"""Review: the README's own configuration examples for secrets load as written.

The README writes an API-key account's secret and the Telegram bot token as
``"${file:NAME}"`` (a file of ``$CREDENTIALS_DIRECTORY``, as channel URLs spell it); the
loader accepted only ``"credential:NAME"`` and refused ``${file:NAME}`` as "a literal
secret", so a newcomer copying the README was stopped at start-up."""

from __future__ import annotations

import re
from pathlib import Path

from monitor.config import load_config

README = Path(__file__).parents[1] / "README.md"
KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
TOKEN = "123456:ABCdefGhIJKlmnOPQrstUVwxyz0123456789"


def readme_toml(marker: str) -> str:
    """The README's ```toml block containing ``marker``."""
    blocks = re.findall(r"```toml\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    (block,) = [b for b in blocks if marker in b]
    return block


def test_the_readme_api_key_account_example_loads_its_secret_from_the_credentials_dir(
    tmp_path: Path,
) -> None:
    block = readme_toml('id = "binanceusdm:main"')
    assert "${file:binance_secret}" in block  # the spelling under test
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "binance_secret").write_text(SECRET + "\n", encoding="utf-8")
    cfg_path = tmp_path / "monitor.toml"
    cfg_path.write_text(block, encoding="utf-8")
    cfg = load_config(cfg_path, env={"BINANCE_API_KEY": KEY, "CREDENTIALS_DIRECTORY": str(creds)})
    (acct,) = cfg.accounts
    assert acct.credentials is not None
    assert acct.credentials.api_key == KEY
    assert acct.credentials.secret == SECRET  # the file's trailing newline stripped


def test_the_readme_telegram_bot_example_loads_its_token_from_the_credentials_dir(
    tmp_path: Path,
) -> None:
    block = readme_toml("[telegram_bot]")
    assert "${file:telegram-bot-token}" in block
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "telegram-bot-token").write_text(TOKEN + "\n", encoding="utf-8")
    cfg_path = tmp_path / "monitor.toml"
    cfg_path.write_text(block, encoding="utf-8")
    cfg = load_config(cfg_path, env={"CREDENTIALS_DIRECTORY": str(creds)})
    assert cfg.telegram_bot.token == TOKEN
