"""API bearer tokens: only hashes on disk, authentication, revocation across processes, the CLI."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from abasto.api import TokenStore, token_file
from abasto.cli.api import app
from abasto.errors import ConfigError, InvalidInputError, NotFoundError
from abasto.settings import load_settings


def test_only_a_bcrypt_hash_is_stored(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "api" / "tokens.json", rounds=4)
    record, token = store.add("dashboard", "analyst")
    prefix, token_id, secret = token.split("_", 2)
    assert (prefix, token_id) == ("abt", record.token_id) and len(secret) == 43
    text = store.path.read_text()
    assert secret not in text and token not in text
    (entry,) = json.loads(text)["tokens"]
    assert entry["hash"].startswith("$2b$04$") and entry["profile"] == "analyst"
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600


def test_authenticate_accepts_the_token_and_nothing_else(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "tokens.json", rounds=4)
    record, token = store.add("dashboard", "analyst")
    _, other = store.add("notebook", "data_scientist")
    assert store.authenticate(token) == record
    assert store.authenticate(token) == record  # remembered: same answer without bcrypt
    assert store.authenticate(other).profile == "data_scientist"  # type: ignore[union-attr]
    tampered = token[:-1] + ("A" if token[-1] != "A" else "B")
    assert store.authenticate(tampered) is None
    swapped = f"abt_{record.token_id}_{other.rsplit('_', 1)[1]}"  # another token's secret
    assert store.authenticate(swapped) is None
    assert store.authenticate("") is None and store.authenticate("Bearer " + token) is None


def test_revocation_reaches_another_store_on_the_same_file(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    server, cli = TokenStore(path, rounds=4), TokenStore(path, rounds=4)
    _, token = cli.add("dashboard", "analyst")
    assert server.authenticate(token) is not None  # now cached by the server
    assert cli.revoke("dashboard").name == "dashboard"
    assert server.authenticate(token) is None
    assert server.list() == []


def test_bad_requests_name_the_problem(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "tokens.json", rounds=4)
    with pytest.raises(InvalidInputError, match="profile 'boss' is unknown") as unknown:
        store.add("x", "boss")
    assert "analyst" in (unknown.value.hint or "")
    with pytest.raises(InvalidInputError, match="not valid"):
        store.add("no spaces", "analyst")
    store.add("dashboard", "analyst")
    with pytest.raises(InvalidInputError, match="exists already"):
        store.add("dashboard", "planner")
    with pytest.raises(NotFoundError, match="no API token named 'ghost'"):
        store.revoke("ghost")
    store.path.write_text("{broken")
    with pytest.raises(ConfigError, match="unreadable"):
        store.list()


def test_cli_adds_lists_and_revokes(tmp_path: Path) -> None:
    runner = CliRunner()
    env = {"ABASTO_HOME": str(tmp_path / "home")}
    added = runner.invoke(app, ["api", "token", "add", "dashboard", "--profile", "planner"], env=env)
    assert added.exit_code == 0, added.output
    token = added.stdout.splitlines()[0]
    assert token.startswith("abt_") and "shown only now" in added.stderr
    store = TokenStore(token_file(load_settings(home=tmp_path / "home")))
    assert store.authenticate(token) is not None and store.authenticate(token).profile == "planner"  # type: ignore[union-attr]
    listed = runner.invoke(app, ["api", "token", "list", "--json"], env=env)
    (entry,) = json.loads(listed.stdout)
    assert entry["name"] == "dashboard" and "hash" not in entry and token not in listed.stdout
    revoked = runner.invoke(app, ["api", "token", "revoke", "dashboard"], env=env)
    assert revoked.exit_code == 0 and "revoked" in revoked.stdout
    assert store.authenticate(token) is None
    again = runner.invoke(app, ["api", "token", "revoke", "dashboard"], env=env)
    assert isinstance(again.exception, NotFoundError)
    empty = runner.invoke(app, ["api", "token", "list"], env=env)
    assert "abasto api token add" in empty.stdout
