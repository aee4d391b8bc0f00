"""The CLI's remembered login: server URL, username and token in ``~/.config/daig/session.json``."""

from __future__ import annotations

import json
import os
from pathlib import Path

from daig.client import ClientError, DaigClient
from daig_cli.output import fail
from daig_cli.passwords import password_for


def session_file() -> Path:
    config_home = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return config_home / "daig" / "session.json"


def save(server: str, username: str, token: str) -> None:
    path = session_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_suffix(".tmp")
    with open(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as out:
        json.dump({"server": server, "username": username, "token": token}, out)
    temp.replace(path)


def load() -> dict[str, str] | None:
    try:
        data = json.loads(session_file().read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def connect(server: str | None, user: str | None, password: str | None) -> DaigClient:
    """A logged-in client: reuse the saved session, or log in with the password given,
    ``DAIG_PASSWORD`` or the hidden prompt (the token is then saved)."""
    saved = load()
    if saved is not None and server and saved.get("server") != server.rstrip("/"):
        saved = None
    if saved is not None and user and saved.get("username") != user:
        saved = None
    if user and (saved is None or password_for(password, user, prompt=False)):
        if not server:
            fail("--server is needed with --user")
        secret = password_for(password, user)
        assert secret is not None  # the prompt always answers
        client = DaigClient(server)
        try:
            client.login(user, secret)
        except ClientError as exc:
            fail(str(exc))
        save(server.rstrip("/"), user, str(client.token))
        return client
    if saved is None:
        fail(
            "not logged in: pass --server URL --user NAME (the password is read from "
            "--password-file, DAIG_PASSWORD or a prompt; the login is remembered)"
        )
    return DaigClient(saved["server"], saved["token"])
