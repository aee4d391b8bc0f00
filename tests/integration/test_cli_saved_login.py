"""``daig login`` keeps a session token (never the password) in a private file that ``daig
provider`` starts from; ``daig logout`` forgets it; a mismatched user is refused clearly."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from tests.helpers.accounts import PASSWORD
from tests.helpers.cli import run_daig


def test_login_saves_a_token_only_and_logout_forgets_it(
    api_server, make_user, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    monkeypatch.delenv("DAIG_PASSWORD", raising=False)
    user = make_user(api_server.url, "saver").me().username
    done = run_daig(
        tmp_path, "login", "--server", api_server.url, "--user", user, "--password", PASSWORD
    )
    assert done.returncode == 0, done.stderr
    saved = tmp_path / "config" / "daig" / "saved-login.json"
    assert _said(f"the session token is in {saved}", done.stderr)
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    record = json.loads(saved.read_text())
    assert record["username"] == user and record["token"]
    for file in (p for p in (tmp_path / "config").rglob("*") if p.is_file()):
        assert PASSWORD not in file.read_text(), f"the password is in {file}"

    other = run_daig(tmp_path, "provider", "--user", "someone-else")
    assert other.returncode == 1
    assert _said(f"the saved login is {user}'s, not someone-else's", other.stderr)

    assert run_daig(tmp_path, "logout").returncode == 0
    assert not saved.exists()
    gone = run_daig(tmp_path, "provider")
    assert gone.returncode == 1
    assert _said("no saved login: log in once from the DAIG window", gone.stderr)


def _said(sentence: str, stderr: str) -> bool:
    """Whether the CLI printed ``sentence`` (rich wraps long lines anywhere, even in paths)."""
    return "".join(sentence.split()) in "".join(stderr.split())
