"""The CLI's remembered login: server URL, username and token in ``~/.config/daig/session.json``."""

from __future__ import annotations

import json
import os
from pathlib import Path

from daig.client import ClientError, DaigClient
from daig_cli.output import fail


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
    """A logged-in client: log in with the given credentials, or reuse the saved session."""
    if user and password:
        if not server:
            fail("--server is needed with --user and --password")
        client = DaigClient(server)
        try:
            client.login(user, password)
        except ClientError as exc:
            fail(str(exc))
        save(server.rstrip("/"), user, str(client.token))
        return client
    saved = load()
    if saved is None or (server and saved.get("server") != server.rstrip("/")):
        fail("not logged in: pass --server URL --user U --password P (they are remembered)")
    return DaigClient(saved["server"], saved["token"])
