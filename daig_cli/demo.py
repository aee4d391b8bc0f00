"""``daig demo``: the whole system on this machine, training a real model end to end.

Starts the API, scheduler, aggregator and N providers as separate processes on the local
RabbitMQ, Postgres (a fresh ``daig_demo`` database) and a local blob store; creates a user and
a project (an MLP on scikit-learn's digits, held-out rows kept aside); shows each round;
downloads the result; and compares its held-out accuracy and wall time with a local
``model.fit`` of the same epochs. Processes are cleaned up on exit and on Ctrl-C.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any
from uuid import UUID

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from daig.client import DaigClient
from daig.contract.http import ProjectOut
from daig.credits.units import DECIMALS, UNIT_TEXT, credits_text
from daig.hyperparams import Hyperparameters
from daig.settings import Settings
from daig_cli.cluster import LocalCluster
from daig_cli.local_infra import Database, services_reachable
from daig_cli.output import console

DEMO_PARAMS = Hyperparameters(
    epochs=5, batch_size=32, validation_split=0.0, total_tasks=12, task_size=4, passes=3
)
USER, PASSWORD = "demo", "demo-password"
VOLUNTEER = "volunteer-{}"  # each provider process volunteers as its own account
DATABASE = "daig_demo"


def run_demo(*, providers: int = 3, keep: bool = False) -> int:
    base = Settings()
    database_url = Database.named(base.database_url, DATABASE).url
    if not services_reachable(database_url, base.amqp_url):
        return 2
    console.rule("[bold]DAIG demo")
    # A vhost of its own on the operator's broker, made through the management API (the
    # demo needs no rabbitmqctl): closing it deletes the vhost and the broker users the API
    # made for the demo's volunteers, and they never clash with a real installation's users.
    cluster = LocalCluster.owned(
        prefix="daig_demo", database=DATABASE, remove_work=True, vhost_by_management=True
    )
    try:
        console.print(f"database {DATABASE} created and migrated")
        return _run(cluster, providers)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted: stopping every demo process[/]")
        return 130
    finally:
        cluster.close(keep=keep)
        if keep:
            vhost = cluster.vhost.name if cluster.vhost else "?"
            console.print(
                f"kept logs and blobs in {cluster.work}, the database {DATABASE} and the "
                f"RabbitMQ vhost {vhost} with its provider users"
            )


def _run(cluster: LocalCluster, providers: int) -> int:
    from daig.examples import write_digits

    work, api_url = cluster.work, cluster.api_url
    files = write_digits(work / "data")
    console.print("digits: 1,437 training rows, 360 held-out rows; model: MLP 64-64-10 (Adam)")
    cluster.start_servers()
    with DaigClient(api_url) as client:
        client.signup(USER, PASSWORD)
        for index in range(providers):
            volunteer = VOLUNTEER.format(index + 1)
            client.signup(volunteer, PASSWORD)
            cluster.start_provider(f"provider-{index + 1}", volunteer, PASSWORD)
        console.print(
            f"API, scheduler, aggregator and {providers} providers running "
            f"(logs in {cluster.log_dir})"
        )
        client.login(USER, PASSWORD)
        project = client.create_project("digits-demo", DEMO_PARAMS)
        for kind in ("model", "data", "labels"):
            client.upload_file(project.id, kind, getattr(files, kind))
        began = time.perf_counter()
        client.start(project.id)
        final = _follow(client, project.id)
        wall = time.perf_counter() - began
        if final.state != "done":
            console.print(f"[red]project {final.state}: {final.error}[/]")
            return 1
        model_path = work / "trained.h5"
        client.download_model(project.id, model_path)
        if not _report_credits(client, api_url, project.id, providers):
            return 1
    return _report(files, model_path, wall, providers)


def _report_credits(client: DaigClient, api_url: str, project_id: UUID, providers: int) -> bool:
    """Each volunteer's earned credit and the requestor's spend; True if they agree exactly."""
    table = Table(title=f"credits ({UNIT_TEXT})")
    table.add_column("account")
    table.add_column("tasks", justify="right")
    table.add_column("earned", justify="right")
    table.add_column("spent", justify="right")
    earned_total = 0.0
    board = {row.username: row for row in client.leaderboard(project_id, limit=providers)}
    for index in range(providers):
        name = VOLUNTEER.format(index + 1)
        with DaigClient(api_url) as volunteer:
            volunteer.login(name, PASSWORD)
            earned = volunteer.credits().earned
        earned_total = round(earned_total + earned, DECIMALS)  # exact micro-credits
        tasks = board[name].tasks if name in board else 0
        table.add_row(f"provider {name}", str(tasks), credits_text(earned), "")
    requestor = client.credits()
    spent, granted = requestor.spent, requestor.granted
    cost = client.project_cost(project_id)
    table.add_row(
        f"requestor {USER}", str(cost.paid_tasks), "", credits_text(spent), end_section=True
    )
    table.add_row("providers' total", "", credits_text(earned_total), "")
    console.print(table)
    if earned_total != spent or spent != cost.spent:
        console.print(
            f"[red]the ledger does not agree: providers earned {credits_text(earned_total)}, "
            f"the requestor spent {credits_text(spent)}, the project cost "
            f"{credits_text(cost.spent)}[/]"
        )
        return False
    console.print(
        f"[green]providers earned exactly what the requestor spent: {credits_text(spent)} "
        f"credits (estimate {credits_text(cost.estimate or 0)}; the sign-up grant is "
        f"{credits_text(granted)})[/]"
    )
    return True


def _follow(client: DaigClient, project_id: UUID) -> ProjectOut:
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("round {task.completed:.0f}/{task.total:.0f}"),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        project = client.project(project_id)
        bar = progress.add_task("training", total=project.total_rounds or 1, detail="")
        while project.state not in ("done", "failed", "cancelled"):
            time.sleep(0.5)
            project = client.project(project_id)
            metrics = project.latest_metrics or {}
            detail = f"{project.tasks_in_flight} working  " + (
                f"train loss {metrics['loss']:.3f} acc {metrics['accuracy']:.3f}"
                if "loss" in metrics and "accuracy" in metrics
                else ""
            )
            progress.update(bar, completed=project.round, detail=detail)
    for r in client.rounds(project_id):
        m = r.metrics or {}
        console.print(
            f"  round {r.number}: {r.accepted} results, train loss "
            f"{m.get('loss', float('nan')):.3f}, accuracy {m.get('accuracy', 0):.3f}"
        )
    return project


def _report(files: Any, model_path: Path, wall: float, providers: int) -> int:
    import keras
    import numpy as np

    from daig.examples import build_mlp, held_out_accuracy

    accuracy = held_out_accuracy(model_path, files.test_data, files.test_labels)
    x, y = np.load(files.data), np.load(files.labels)
    epochs = DEMO_PARAMS.epochs * DEMO_PARAMS.passes
    keras.utils.set_random_seed(0)
    local = build_mlp()
    began = time.perf_counter()
    local.fit(x, y, epochs=epochs, batch_size=DEMO_PARAMS.batch_size, verbose=0)
    local_wall = time.perf_counter() - began
    local.save(model_path.with_name("local.h5"))
    local_accuracy = held_out_accuracy(
        model_path.with_name("local.h5"), files.test_data, files.test_labels
    )
    table = Table(title="held-out digits (360 rows never seen in training)")
    table.add_column("training")
    table.add_column("held-out accuracy", justify="right")
    table.add_column("wall time", justify="right")
    table.add_row(
        f"DAIG, {providers} providers, {DEMO_PARAMS.passes} passes x {DEMO_PARAMS.epochs} epochs",
        f"{accuracy:.4f}",
        f"{wall:.1f} s",
    )
    table.add_row(
        f"local model.fit, {epochs} epochs", f"{local_accuracy:.4f}", f"{local_wall:.1f} s"
    )
    console.print(table)
    console.print(
        "(on one small machine DAIG's time is mostly coordination; it pays off "
        "when tasks are big and volunteers many)"
    )
    return 0
