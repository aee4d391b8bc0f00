"""``daig credits balance|history|cost``, ``daig leaderboard [PROJECT]``, ``daig standing``.

Amounts are credits (``daig.credits.units``: one credit is 10^6 samples x epochs x model
parameters of accepted training), shown to two decimals. Results go to stdout (tables), errors
to stderr.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from daig.client import ClientError, DaigClient
from daig.contract.http import HistoryLineOut
from daig.credits.units import UNIT_TEXT, credits_text
from daig_cli import ids, session
from daig_cli.output import fail
from daig_cli.passwords import PasswordOpt, password_options
from daig_cli.project import ServerOpt, UserOpt

app = typer.Typer(
    help="Your credits: earned by volunteering, spent by your projects.", no_args_is_help=True
)
out = Console()
T = TypeVar("T")


def _table(*columns: tuple[str, str], show_header: bool = True) -> Table:
    """Numbers never wrap or shrink (a narrow terminal wraps only the ``wrap`` column)."""
    table = Table(show_header=show_header)
    for name, how in columns:
        table.add_column(
            name,
            justify="right" if how == "right" else "left",
            no_wrap=how != "wrap",
            overflow="fold" if how == "wrap" else "ignore",
        )
    return table


def _ask(client: DaigClient, call: Callable[..., T], *args: Any) -> T:
    try:
        return call(*args)
    except ClientError as exc:
        fail(str(exc))
    finally:
        client.close()


def _ask_id(client: DaigClient, project_id: str) -> str:
    try:
        return ids.resolve(client, project_id)
    except ClientError as exc:
        fail(str(exc))


@app.command()
@password_options
def balance(server: str = ServerOpt, user: str = UserOpt, password: str = PasswordOpt) -> None:
    """Your balance, what it is made of, and what your unfinished projects will still cost."""
    client = session.connect(server, user, password)
    totals = _ask(client, client.credits)
    table = _table(("", "left"), ("credits", "right"), show_header=False)
    for label, key in (
        ("balance", "balance"),
        ("granted at sign-up", "granted"),
        ("earned by volunteering", "earned"),
        ("spent by your projects", "spent"),
        ("still to be spent (unfinished projects)", "committed"),
        ("available for new projects", "available"),
    ):
        table.add_row(label, credits_text(getattr(totals, key)))
    out.print(table)
    out.print(f"({UNIT_TEXT})")


@app.command()
@password_options
def history(
    limit: int = typer.Option(30, min=1, max=1000, help="How many recent entries to show."),
    server: str = ServerOpt,
    user: str = UserOpt,
    password: str = PasswordOpt,
) -> None:
    """Your account's entries, newest first, with the balance after each."""
    client = session.connect(server, user, password)
    lines = _ask(client, client.credit_history, limit)
    table = _table(
        ("when (UTC)", "left"), ("amount", "right"), ("balance", "right"), ("what", "wrap")
    )
    for line in lines:
        table.add_row(
            line.at.strftime("%m-%d %H:%M:%S"),
            credits_text(line.amount, signed=True),
            credits_text(line.balance_after),
            _what(line),
        )
    out.print(table if lines else "no entries yet")


def _what(line: HistoryLineOut) -> str:
    if line.kind == "grant":
        return "sign-up grant"
    verb = "earned" if line.amount > 0 else "paid"
    return f"{verb}, project {str(line.project_id or '')[:8]}, {line.memo}"


@app.command()
@password_options
def cost(
    project_id: str = typer.Argument(..., help="The project's id, or any unique start of it."),
    server: str = ServerOpt,
    user: str = UserOpt,
    password: str = PasswordOpt,
) -> None:
    """What one of your projects has cost so far, and its estimate in all."""
    client = session.connect(server, user, password)
    report = _ask(client, client.project_cost, _ask_id(client, project_id))
    estimate = report.estimate
    table = _table(("", "left"), ("credits", "right"), show_header=False)
    table.add_row(
        "estimate",
        "unknown until model and data are uploaded" if estimate is None else credits_text(estimate),
    )
    if estimate is not None and report.replicas:
        table.add_row("  of which replicated tasks (verification)", credits_text(report.replicas))
    table.add_row("spent so far", f"{credits_text(report.spent)} ({report.paid_tasks} tasks)")
    if report.remaining is not None:
        table.add_row("still to spend", credits_text(report.remaining))
    out.print(table)


@password_options
def leaderboard(
    project_id: str = typer.Argument(
        None, help="A project you own or contributed to (default: all projects)."
    ),
    limit: int = typer.Option(20, min=1, max=500, help="How many contributors to list."),
    server: str = ServerOpt,
    user: str = UserOpt,
    password: str = PasswordOpt,
) -> None:
    """Contributors ranked by credits earned, in one project or overall."""
    client = session.connect(server, user, password)
    if project_id is not None:  # a prefix names one of your own projects
        project_id = _ask_id(client, project_id)
    rows = _ask(client, client.leaderboard, project_id, limit)
    table = _table(
        ("#", "right"), ("contributor", "left"), ("credits", "right"), ("tasks", "right")
    )
    for row in rows:
        table.add_row(str(row.rank), row.username, credits_text(row.credits), str(row.tasks))
    out.print(table if rows else "no accepted work yet")


@password_options
def standing(server: str = ServerOpt, user: str = UserOpt, password: str = PasswordOpt) -> None:
    """Your standing as a volunteer: verified results, trust, and any quarantine."""
    client = session.connect(server, user, password)
    report = _ask(client, client.standing)
    out.print(report.summary)
    out.print(
        f"verified results: {report.verified_valid} valid, {report.verified_invalid} invalid; "
        f"{report.results_waiting} waiting for their replicas"
    )
    if report.quarantined:
        out.print(
            "Your agent gets no more tasks. If you think a result was judged wrongly, ask the "
            "operator to review it (they can lift the quarantine)."
        )


def register(main: typer.Typer) -> None:
    main.add_typer(app, name="credits")
    main.command("leaderboard")(leaderboard)
    main.command("standing")(standing)
