"""``daig login`` keeps an access and a refresh token (never the password) in a private file
that ``daig provider`` starts from; ``daig logout`` revokes the refresh token on the server and
forgets both; a mismatched user is refused clearly."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import httpx

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
    assert _said(f"the login is saved in {saved}", done.stderr)
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    record = json.loads(saved.read_text())
    assert record["username"] == user and record["token"] and record["refresh_token"]
    refresh = {"grant_type": "refresh_token", "refresh_token": record["refresh_token"]}
    assert httpx.post(f"{api_server.url}/v1/auth/refresh", data=refresh).status_code == 200
    for file in (p for p in (tmp_path / "config").rglob("*") if p.is_file()):
        assert PASSWORD not in file.read_text(), f"the password is in {file}"

    other = run_daig(tmp_path, "provider", "--user", "someone-else")
    assert other.returncode == 1
    assert _said(f"the saved login is {user}'s, not someone-else's", other.stderr)

    out = run_daig(tmp_path, "logout")
    assert out.returncode == 0 and _said("the saved login is revoked and forgotten", out.stderr)
    assert not saved.exists()
    revoked = httpx.post(f"{api_server.url}/v1/auth/refresh", data=refresh)
    assert revoked.status_code == 401 and revoked.json()["reason"] == "refresh_revoked"
    gone = run_daig(tmp_path, "provider")
    assert gone.returncode == 1
    assert _said("no saved login: log in once from the DAIG window", gone.stderr)


def _said(sentence: str, stderr: str) -> bool:
    """Whether the CLI printed ``sentence`` (rich wraps long lines anywhere, even in paths)."""
    return "".join(sentence.split()) in "".join(stderr.split())
