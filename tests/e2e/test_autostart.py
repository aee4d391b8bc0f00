"""An autostarted volunteer: the exact ``Exec=`` command of the autostart entry the GUI's tick
writes, run from a saved login whose access token has long expired and no password anywhere,
renews it with the saved refresh token and trains a task that is accepted; a saved login the
server refuses (no refresh token, or a revoked one) makes it say to log in again."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import jwt
import pytest
from sqlalchemy import create_engine, text

from daig.client import DaigClient
from daig.hyperparams import Hyperparameters
from provider_agent import saved_login
from requestor_gui import desktop_entry
from tests.helpers.projects import wait_for_end

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
VOLUNTEER_PASSWORD = "volunteer-pass"


def _desktop_env(cluster, home: Path) -> dict[str, str]:
    """The cluster's environment as a desktop session would have it: no DAIG credentials."""
    env = {
        k: v for k, v in cluster.processes.env.items() if k not in ("DAIG_USER", "DAIG_PASSWORD")
    }
    env |= {
        "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_RUNTIME_DIR": str(home / "runtime"),
        "XDG_CACHE_HOME": str(home / "cache"),
        "HOME": str(home),
    }
    return env


def _autostart_argv(home: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    # No keyring in a CI session: the token goes to the private file, which the agent (in
    # its own environment) reads; with a keyring both would use it.
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    entry = desktop_entry.set_autostart(True)
    line = next(x for x in entry.read_text().splitlines() if x.startswith("Exec="))
    return desktop_entry.parse_exec(line.removeprefix("Exec="))


def _expired_token(cluster, user_id: int) -> str:
    """An access token as the server signs them, which expired an hour ago."""
    now = int(time.time())
    claims = {"sub": str(user_id), "iat": now - 7200, "exp": now - 3600}
    return jwt.encode(claims, cluster.processes.env["DAIG_SECRET_KEY"], "HS256")


def _remembered(cluster, user: str, password: str) -> str:
    """What the GUI saves at login besides the access token: a refresh token."""
    with DaigClient(cluster.api_url) as desktop:
        desktop.login(user, password, remember=True, label="DAIG window on test")
        assert desktop.refresh_token
        return desktop.refresh_token


def test_an_autostarted_agent_trains_from_the_saved_login(
    cluster, digits_files, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    requestor = cluster.account("requestor", "requestor-pass")
    volunteer = cluster.account("volunteer", VOLUNTEER_PASSWORD)
    home = tmp_path / "desktop"
    (home / "runtime").mkdir(parents=True, mode=0o700)
    argv = _autostart_argv(home, monkeypatch)
    # What the GUI does at login: the tokens are saved, never the password; by the time the
    # computer starts again the access token has expired.
    refresh = _remembered(cluster, "volunteer", VOLUNTEER_PASSWORD)
    expired = _expired_token(cluster, volunteer.me().id)
    saved_login.save(saved_login.SavedLogin(cluster.api_url, "volunteer", expired, refresh))
    for file in (p for p in (home / "config").rglob("*") if p.is_file()):
        assert VOLUNTEER_PASSWORD not in file.read_text()

    project = requestor.create_project(
        "autostart", Hyperparameters(epochs=2, total_tasks=1, task_size=1, passes=1)
    )
    for kind in ("model", "data", "labels"):
        requestor.upload_file(project.id, kind, getattr(digits_files, kind))
    requestor.start(project.id)
    with open(tmp_path / "autostarted.log", "wb") as log:
        agent = subprocess.Popen(
            argv, env=_desktop_env(cluster, home), stdout=log, stderr=subprocess.STDOUT
        )
    try:
        final = wait_for_end(requestor, project.id)
        assert final.state == "done", (tmp_path / "autostarted.log").read_text()[-3000:]
        engine = create_engine(cluster.database_url)
        with engine.connect() as connection:
            winners = (
                connection.execute(
                    text(
                        "SELECT u.username FROM results r JOIN users u ON u.id = r.provider_id "
                        "WHERE r.status = 'accepted'"
                    )
                )
                .scalars()
                .all()
            )
        engine.dispose()
        assert winners == ["volunteer"]
    finally:
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(60) == 0


def test_a_refused_saved_token_says_to_log_in_again(
    cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "desktop"
    (home / "runtime").mkdir(parents=True, mode=0o700)
    argv = _autostart_argv(home, monkeypatch)
    with DaigClient(cluster.api_url) as client:
        client.signup("expired", VOLUNTEER_PASSWORD)
    revoked = _remembered(cluster, "expired", VOLUNTEER_PASSWORD)
    with DaigClient(cluster.api_url, refresh_token=revoked) as client:
        client.logout()
    # Saved before refresh tokens (an access token only), and logged out elsewhere.
    for refresh in ("", revoked):
        saved_login.save(
            saved_login.SavedLogin(cluster.api_url, "expired", "not-a-valid-token", refresh)
        )
        done = subprocess.run(
            argv, env=_desktop_env(cluster, home), capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 1
        message = " ".join(done.stderr.split())
        assert "log in again from the DAIG window or with `daig login`" in message, done.stderr
        assert "daig signup" not in message
