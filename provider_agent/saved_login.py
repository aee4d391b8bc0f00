"""The saved login a background agent starts from: server, username, access and refresh token.

The GUI saves it when the volunteer logs in (and ``daig login`` does too), so an agent started
at login (``daig provider --use-saved-login``) needs no password typed. The tokens go to the
platform keyring (the ``keyring`` package) when a usable backend exists, otherwise into the
mode-0600 file ``$XDG_CONFIG_HOME/daig/saved-login.json``; that file always holds the server
and username. The password is never stored anywhere.

The access token expires (the API's ``DAIG_TOKEN_TTL_SECONDS``, a day by default); the agent
renews it with the refresh token, which lasts ``DAIG_REFRESH_TOKEN_DAYS`` (90 by default) after
its last use and ends at logout (the window's or ``daig logout``, which revoke it on the
server). Only when the refresh token is refused does the agent say to log in again. A file
saved before refresh tokens holds an access token only; it still loads, and lasts a day.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)
SERVICE = "daig"  # the keyring's service name; the entry's key is "<username>@<server>"
EXPIRED = (
    "the saved login has expired or was revoked: log in again from the DAIG window or with "
    "`daig login`, then start the agent again"
)
MISSING = (
    "no saved login: log in once from the DAIG window or with `daig login` (the password is "
    "not stored; a revocable login token is), or pass --user and --password"
)


class NoSavedLogin(Exception):
    """Nothing saved, or it can no longer be read."""


@dataclass(frozen=True)
class SavedLogin:
    server: str
    username: str
    token: str  # the access token (short-lived)
    refresh_token: str = ""  # renews ``token``; empty in logins saved before refresh tokens


def saved_login_file() -> Path:
    config_home = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return config_home / "daig" / "saved-login.json"


def _keyring_backend() -> object | None:
    """The platform keyring if one is usable here (not the fail or null backends)."""
    try:
        import keyring

        backend = keyring.get_keyring()
        return backend if float(getattr(backend, "priority", 0)) > 0 else None
    except Exception as exc:  # a broken keyring setup must only mean "use the file"
        log.info("no usable keyring (%s); using a private file", exc)
        return None


def _refresh_key(key: str) -> str:
    return f"{key} refresh"


def save(login: SavedLogin) -> str:
    """Save the login; returns where the tokens went (for the volunteer to read)."""
    key = f"{login.username}@{login.server}"
    record: dict[str, str] = {"server": login.server, "username": login.username}
    where = str(saved_login_file())
    backend = _keyring_backend()
    if backend is not None:
        try:
            import keyring

            keyring.set_password(SERVICE, key, login.token)
            if login.refresh_token:
                keyring.set_password(SERVICE, _refresh_key(key), login.refresh_token)
            record["token_in"] = "keyring"
            where = f"the keyring ({type(backend).__name__})"
        except Exception as exc:  # e.g. a locked Secret Service with no prompt available
            log.info("keyring refused the token (%s); using a private file", exc)
    if "token_in" not in record:
        record["token"] = login.token
        if login.refresh_token:
            record["refresh_token"] = login.refresh_token
    _write_private(saved_login_file(), record)
    return where


def load() -> SavedLogin:
    """The saved login; raises ``NoSavedLogin`` with a sentence saying what to do."""
    try:
        record = json.loads(saved_login_file().read_text())
        server, username = str(record["server"]), str(record["username"])
    except FileNotFoundError as exc:
        raise NoSavedLogin(MISSING) from exc
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise NoSavedLogin(f"{saved_login_file()} is unreadable ({exc}); {MISSING}") from exc
    token, refresh = record.get("token"), record.get("refresh_token")
    if record.get("token_in") == "keyring":
        key = f"{username}@{server}"
        try:
            import keyring

            token = keyring.get_password(SERVICE, key)
            refresh = keyring.get_password(SERVICE, _refresh_key(key))
        except Exception as exc:
            raise NoSavedLogin(f"the keyring cannot be read ({exc}); {MISSING}") from exc
    if not isinstance(token, str) or not token:
        raise NoSavedLogin(MISSING)
    return SavedLogin(server, username, token, refresh if isinstance(refresh, str) else "")


def forget() -> None:
    """Remove the saved login (the tokens from the keyring too). Revoking the refresh token
    on the server is the caller's (``revoke``), before this."""
    path = saved_login_file()
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        record = {}
    if isinstance(record, dict) and record.get("token_in") == "keyring":
        key = f"{record.get('username')}@{record.get('server')}"
        for entry in (key, _refresh_key(key)):
            try:
                import keyring

                keyring.delete_password(SERVICE, entry)
            except Exception as exc:  # includes "no such entry" for a login without refresh
                log.info("could not remove a token from the keyring (%s)", exc)
    path.unlink(missing_ok=True)


def revoke(refresh_token: str, server: str) -> str | None:
    """Revoke ``refresh_token`` on ``server``, best effort: None when done, else why not (the
    server unreachable...), for the caller to tell the volunteer."""
    from daig.client import ClientError, DaigClient

    try:
        with DaigClient(server, refresh_token=refresh_token, timeout=10.0) as client:
            client.logout()
    except ClientError as exc:
        log.warning("could not revoke the saved login on %s (%s)", server, exc)
        return str(exc)
    return None


def revoke_and_forget() -> str | None:
    """Log out for good: revoke the saved login's refresh token (best effort: see ``revoke``)
    and forget the saved login. Returns why the server could not be told, if it could not."""
    try:
        saved = load()
    except NoSavedLogin:
        saved = None
    problem = revoke(saved.refresh_token, saved.server) if saved and saved.refresh_token else None
    forget()
    return problem


def _write_private(path: Path, record: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temp = path.with_name(f".{path.name}.tmp")
    temp.unlink(missing_ok=True)
    with open(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as out:
        json.dump(record, out)
    temp.replace(path)
