"""``daig login`` / ``daig logout`` and the background agent's configuration.

``daig login`` saves a revocable login (access and refresh token, never the password) where
``daig provider --use-saved-login`` finds it (``provider_agent/saved_login.py``); ``daig logout``
revokes it on the server and forgets it. That agent takes the limits
the volunteer set in the DAIG window (``requestor_gui/settings.py``) unless given on the command
line, and reports its state to the window through the status file
(``provider_agent/status_file.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from daig_cli.output import console, fail

if TYPE_CHECKING:
    from provider_agent.config import AgentConfig


def register(app: typer.Typer) -> None:
    app.command()(login)
    app.command()(logout)


def login(
    server: str = typer.Option(..., envvar="DAIG_SERVER", help="URL of the DAIG API."),
    user: str = typer.Option(..., envvar="DAIG_USER", help="Your DAIG username."),
    password: str = typer.Option(
        ..., envvar="DAIG_PASSWORD", prompt=True, hide_input=True, help="Your password."
    ),
) -> None:
    """Log in and save a login for the background agent (the password is not saved): it
    lasts while used, until `daig logout`."""
    import socket

    from daig.client import ClientError, DaigClient
    from daig_cli import session
    from provider_agent import saved_login

    server = server.rstrip("/")
    label = f"daig login on {socket.gethostname()}"
    with DaigClient(server) as client:
        try:
            token = client.login(user, password, remember=True, label=label)
        except ClientError as exc:
            fail(str(exc))
        refresh = client.refresh_token or ""
    where = saved_login.save(saved_login.SavedLogin(server, user, token, refresh))
    session.save(server, user, token)
    console.print(f"logged in as [bold]{user}[/] on {server}; the login is saved in {where}")


def logout() -> None:
    """Revoke and forget the saved login (no background agent can start without a login)."""
    from daig_cli import session
    from provider_agent import saved_login

    problem = saved_login.revoke_and_forget()
    session.session_file().unlink(missing_ok=True)
    if problem:
        console.print(
            f"the saved login is forgotten here, but the server could not revoke it ({problem}); "
            f"it stops working once unused for the server's expiry (90 days by default)"
        )
    else:
        console.print("the saved login is revoked and forgotten")


def saved_agent_config(
    *,
    server: str | None,
    user: str | None,
    threads: int | None,
    memory_mb: int | None,
    idle_minutes: float | None,
    hours: str | None,
    on_battery: bool | None,
) -> AgentConfig:
    """The agent's settings from the saved login and the window's limits; exits with a
    sentence saying what to do when there is no saved login."""
    from provider_agent import saved_login, status_file
    from provider_agent.config import AgentConfig
    from requestor_gui.settings import GuiSettings

    running = status_file.read()
    if running is not None:
        fail(
            f"a background agent already volunteers here (process {running.pid}); stop it "
            "from the DAIG window (or kill it) before starting another"
        )
    try:
        saved = saved_login.load()
    except saved_login.NoSavedLogin as exc:
        fail(str(exc))
    if server and server.rstrip("/") != saved.server:
        fail(f"the saved login is for {saved.server}, not {server}: log in there first")
    if user and user != saved.username:
        fail(f"the saved login is {saved.username}'s, not {user}'s: pass --password, or log in")
    limits = GuiSettings.load()
    return AgentConfig(
        server=saved.server,
        username=saved.username,
        password="",
        token=saved.token,
        refresh_token=saved.refresh_token or None,
        threads=threads or limits.threads or None,
        memory_mb=memory_mb or limits.memory_mb or None,
        idle_minutes=idle_minutes or limits.idle_minutes or None,
        hours=hours or limits.hours or None,
        pause_on_battery=not (limits.work_on_battery if on_battery is None else on_battery),
        status_file=status_file.default_path(),
    )
