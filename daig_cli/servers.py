"""``daig api | scheduler | aggregator | migrate | provider | signup``: run one part of DAIG."""

from __future__ import annotations

import typer

from daig_cli.extras import require_extra
from daig_cli.output import console, fail
from daig_cli.passwords import (
    PasswordOpt,
    agent_password,
    password_options,
    required_password,
)


def register(app: typer.Typer) -> None:
    app.command()(api)
    app.command()(scheduler)
    app.command()(aggregator)
    app.command()(migrate)
    app.command()(provider)
    app.command()(signup)
    app.command()(health)
    app.command()(audit)


def api(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, help="Port to listen on."),
) -> None:
    """Run the HTTP API (settings from DAIG_* environment variables)."""
    require_extra("api")
    from daig_api.__main__ import main
    from daig_cli.settings_check import require_valid_settings

    require_valid_settings()
    main(host=host, port=port)


def scheduler() -> None:
    """Run the scheduler: plan rounds and publish tasks."""
    require_extra("scheduler")
    from daig_cli.settings_check import require_valid_settings
    from daig_scheduler.__main__ import main

    require_valid_settings()
    main()


def aggregator() -> None:
    """Run the aggregator: accept results and combine them into new weights."""
    require_extra("aggregator")
    from daig_aggregator.__main__ import main
    from daig_cli.settings_check import require_valid_settings

    require_valid_settings()
    main()


def migrate() -> None:
    """Create the database if needed and apply all schema migrations."""
    require_extra("migrate")
    from sqlalchemy.exc import OperationalError

    from daig.db.migrate import upgrade
    from daig.logs import setup_logging
    from daig.settings import Settings

    setup_logging(process="migrate")
    settings = Settings()
    try:
        upgrade(settings.database_url)
    except OperationalError as exc:
        fail(
            f"cannot reach PostgreSQL ({str(exc.orig).strip().splitlines()[0]}); "
            "check DAIG_DATABASE_URL and that the server runs"
        )
    console.print("[green]database schema is up to date[/]")


@password_options
def provider(
    server: str = typer.Option(None, envvar="DAIG_SERVER", help="URL of the DAIG API."),
    user: str = typer.Option(None, envvar="DAIG_USER", help="Your DAIG username."),
    password: str | None = PasswordOpt,
    use_saved_login: bool = typer.Option(
        False,
        "--use-saved-login",
        help="Start from the login saved by the DAIG window or `daig login` (no password; "
        "the default when no password is given and none can be asked for). Limits not given "
        "here come from the window's settings, and the status is shared with the window.",
    ),
    threads: int = typer.Option(None, min=1, help="CPU threads training may use (default all)."),
    memory_mb: int = typer.Option(
        None, min=256, help="Stop a task whose training process uses more memory (MB)."
    ),
    max_tasks: int = typer.Option(None, min=1, help="Stop after this many tasks."),
    idle_minutes: float = typer.Option(
        None,
        min=0.1,
        help="Work only after this many minutes without keyboard or mouse input (X11; "
        "elsewhere idle time is unknown and this is not enforced, as the status says).",
    ),
    hours: str = typer.Option(
        None, help="Work only within these daily hours, e.g. 22:00-07:00 (local time)."
    ),
    on_battery: bool = typer.Option(
        False, "--on-battery", help="Keep working on battery (by default work pauses)."
    ),
    suspend_minutes: float = typer.Option(
        30.0,
        min=0.0,
        help="A task whose conditions stop holding is suspended, not discarded, for at most "
        "this long; then it is given back.",
    ),
) -> None:
    """Volunteer this machine: train tasks until stopped; Ctrl-C gives the current task back."""
    require_extra("provider")
    from daig.client import ClientError
    from daig.logs import setup_logging
    from daig_cli.desktop import saved_agent_config
    from provider_agent.__main__ import run
    from provider_agent.config import AgentConfig

    setup_logging(process="provider")
    password = agent_password(password, server, user, use_saved_login=use_saved_login)
    if password is None:
        config = saved_agent_config(
            server=server,
            user=user,
            threads=threads,
            memory_mb=memory_mb,
            idle_minutes=idle_minutes,
            hours=_checked_hours(hours),
            on_battery=on_battery or None,
        )
    else:
        if not server or not user:
            fail("--server and --user are needed with a password")
        config = AgentConfig(
            server=server,
            username=user,
            password=password,
            threads=threads,
            memory_mb=memory_mb,
            idle_minutes=idle_minutes,
            hours=_checked_hours(hours),
            pause_on_battery=not on_battery,
        )
    config.max_tasks = max_tasks
    config.suspend_minutes = suspend_minutes
    try:
        run(config)
    except ClientError as exc:
        fail(str(exc) + _signup_hint(exc, config.server, config.username))


def _checked_hours(hours: str | None) -> str | None:
    from provider_agent.politeness import Hours

    if hours:
        try:
            Hours.parse(hours)
        except ValueError as exc:
            fail(f"--hours: {exc}")
    return hours


@password_options
def signup(
    server: str = typer.Option(..., envvar="DAIG_SERVER", help="URL of the DAIG API."),
    user: str = typer.Option(..., envvar="DAIG_USER", help="Username to create."),
    password: str | None = PasswordOpt,
    exist_ok: bool = typer.Option(
        False, "--exist-ok", help="Succeed if the user exists and the password logs in."
    ),
) -> None:
    """Create an account on a DAIG server (password: 8+ characters)."""
    from daig.client import ClientError, DaigClient

    password = required_password(password, user)

    with DaigClient(server) as client:
        try:
            created = client.signup(user, password)
        except ClientError as exc:
            if not (exist_ok and getattr(exc, "status", None) == 409):
                fail(str(exc))
            try:
                client.login(user, password)
            except ClientError as login_error:
                fail(f"user {user} exists but cannot log in: {login_error}")
            console.print(f"user [bold]{user}[/] already exists on {server}")
            return
    console.print(f"created user [bold]{created.username}[/] on {server}")


def _signup_hint(exc: Exception, server: str, user: str) -> str:
    if getattr(exc, "status", None) == 401 and getattr(exc, "reason", None) != "login_expired":
        return f"\n(no account yet? create one: daig signup --server {server} --user {user})"
    return ""


def health(
    server: str = typer.Option(
        "http://127.0.0.1:8000", envvar="DAIG_SERVER", help="URL of the DAIG API."
    ),
) -> None:
    """Show whether the server reaches its database and broker, and the queue depths."""
    from daig.client import ClientError, DaigClient

    with DaigClient(server) as client:
        try:
            report = client.health()
        except ClientError as exc:
            fail(str(exc))
    for part, state in (("database", report.database), ("broker", report.broker)):
        mark = "[green]ok[/]" if state.ok else f"[red]down[/] ({state.error})"
        console.print(f"{part:<9} {mark}")
    for queue, depth in (report.broker.queues or {}).items():
        console.print(f"  {queue:<24} {depth:>6} ready")
    if report.status != "ok":
        raise typer.Exit(1)


def audit(project_id: str) -> None:
    """Verify a project's history on the server side (database and blob store settings).

    Recomputes every closed round's weights from its accepted updates: proves none was lost
    or counted twice.
    """
    require_extra("audit")
    import uuid

    from daig.blobstore import open_blob_store
    from daig.db.session import make_engine, make_sessionmaker
    from daig.settings import Settings
    from daig_aggregator.audit import audit_project, format_report

    settings = Settings()
    engine = make_engine(settings.database_url)
    try:
        with make_sessionmaker(engine)() as session:
            report = audit_project(
                session=session, blobs=open_blob_store(settings), project_id=uuid.UUID(project_id)
            )
    except ValueError as exc:
        fail(str(exc))
    finally:
        engine.dispose()
    console.print(format_report(report))
    if not report.ok:
        raise typer.Exit(1)
