"""``daig quarantine list | show | lift``: the operator's view of quarantined volunteers.

Runs on the server side, straight on the database the ``DAIG_*`` settings name (like
``daig audit``): an account is quarantined when a result of it was outvoted by the other
results of the same task, or when its agents took task messages and claimed none (the
scheduler's black-hole watch, which also deletes its broker user), and only an operator lifts
it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Table

from daig_cli.extras import require_extra
from daig_cli.output import fail

if TYPE_CHECKING:  # the server extra: imported when a command runs, not with the CLI
    from sqlalchemy.orm import Session

    from daig.standing import StandingReport

app = typer.Typer(
    help="Quarantined volunteer accounts: list, inspect, lift (server side).",
    no_args_is_help=True,
)
out = Console()


@contextlib.contextmanager
def _session() -> Iterator[Session]:
    require_extra("quarantine")
    from daig.db.session import make_engine, make_sessionmaker
    from daig.settings import Settings

    engine = make_engine(Settings().database_url)
    try:
        with make_sessionmaker(engine)() as session:
            yield session
    finally:
        engine.dispose()


def _row(report: StandingReport) -> list[str]:
    return [
        report.username,
        "quarantined" if report.quarantined else "lifted",
        f"{report.quarantined_at or report.lifted_at:%Y-%m-%d %H:%M}"
        if (report.quarantined_at or report.lifted_at)
        else "",
        report.project_name or "",
        str(report.verified_valid),
        str(report.verified_invalid),
    ]


@app.command("list")
def list_quarantines(
    lifted: bool = typer.Option(False, "--lifted", help="Also list lifted quarantines."),
) -> None:
    """Every quarantined account, with where it was caught and its verified record."""
    with _session() as session:
        from daig.standing import quarantined_accounts

        reports = quarantined_accounts(session, include_lifted=lifted)
    if not reports:
        out.print("no quarantined accounts")
        return
    table = Table()
    for column in ("account", "status", "since", "project", "valid", "invalid"):
        table.add_column(column, no_wrap=column != "project")
    for report in reports:
        table.add_row(*_row(report))
    out.print(table)


@app.command()
def show(account: str = typer.Argument(..., help="The volunteer's user name.")) -> None:
    """One account's standing: record, quarantine, the task it failed, any lift."""
    with _session() as session:
        from daig.standing import standing_of, user_id_of

        try:
            report = standing_of(session, user_id_of(session, account))
        except LookupError as exc:
            fail(str(exc))
    out.print(f"[bold]{report.username}[/]: {report.summary}")
    out.print(
        f"verified results: {report.verified_valid} valid, {report.verified_invalid} invalid; "
        f"{report.results_held} waiting for their replicas"
    )
    if report.task_id:
        out.print(f"failed task: {report.task_id} of project {report.project_id}")
    if report.lifted_at:
        out.print(f"lifted {report.lifted_at:%Y-%m-%d %H:%M}: {report.lifted_note}")


@app.command()
def lift(
    account: str = typer.Argument(..., help="The volunteer's user name."),
    note: str = typer.Option(..., "--note", help="Why it is lifted (kept with the record)."),
) -> None:
    """Let a quarantined account take work again.

    Its record keeps the invalid result: every task it takes is checked until it has earned
    trust back.
    """
    with _session() as session:
        from daig.standing import lift_quarantine

        try:
            report = lift_quarantine(session, account, note)
        except LookupError as exc:
            fail(str(exc))
        session.commit()
    out.print(f"{report.username}: quarantine lifted ({note})")


def register(parent: typer.Typer) -> None:
    parent.add_typer(app, name="quarantine")
