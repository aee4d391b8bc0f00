"""``daig project create | start | status | list | wait | download``."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from daig import tempdirs
from daig.client import ClientError, DaigClient
from daig.contract.http import ProjectOut
from daig.elapsed import duration_text
from daig.hyperparams import Hyperparameters, check_against_data
from daig.npy import NpyHeader
from daig.trusted import TRUST_EXPLANATION, is_object_array, numeric_copy
from daig.validation import FileRejected, check_file, check_together
from daig_cli import ids, session
from daig_cli import project_view as view
from daig_cli.hyperparams import hyperparameter_options
from daig_cli.output import console, fail
from daig_cli.passwords import PasswordOpt, password_options

app = typer.Typer(help="Create, start, watch and download training projects.", no_args_is_help=True)

ServerOpt = typer.Option(None, "--server", envvar="DAIG_SERVER", help="URL of the DAIG API.")
UserOpt = typer.Option(None, "--user", envvar="DAIG_USER", help="Your DAIG username.")
ProjectArg = typer.Argument(
    ..., metavar="PROJECT_ID", help="The project's id, or any unique start of it."
)
TERMINAL = {"done", "failed", "cancelled"}


@app.command()
@hyperparameter_options
@password_options
def create(
    model: Path = typer.Option(
        ..., exists=True, dir_okay=False, help="Compiled Keras model (.h5)."
    ),
    data: Path = typer.Option(..., exists=True, dir_okay=False, help="Training data (.npy)."),
    labels: Path = typer.Option(..., exists=True, dir_okay=False, help="Labels (.npy)."),
    validation_data: Path = typer.Option(
        None,
        exists=True,
        dir_okay=False,
        help="Held-out rows (.npy): every new global model is evaluated on them.",
    ),
    validation_labels: Path = typer.Option(
        None, exists=True, dir_okay=False, help="Labels of the held-out rows (.npy)."
    ),
    name: str = typer.Option(None, help="Project name (default: the model's file name)."),
    params: Hyperparameters = Hyperparameters(),  # becomes one option per hyperparameter
    start: bool = typer.Option(False, "--start", help="Start training after the upload."),
    wait: bool = typer.Option(False, "--wait", help="Show progress until training ends."),
    trust_object_arrays: bool = typer.Option(
        False,
        "--trust-object-arrays",
        help="Your data or labels are dtype=object .npy files YOU made: unpickle them here "
        "(never on the server) and upload numeric copies.",
    ),
    server: str = ServerOpt,
    user: str = UserOpt,
    password: str = PasswordOpt,
) -> None:
    """Check the files locally, create the project, upload them; print the project id."""
    with tempdirs.scratch("upload") as scratch:
        files = _numeric(
            _files(model, data, labels, validation_data, validation_labels),
            trust_object_arrays,
            scratch,
        )
        _check_locally(files, params)
        project_id = _create_and_upload(
            files, params, name or model.stem, start, wait, session.connect(server, user, password)
        )
    print(project_id)


def _files(
    model: Path,
    data: Path,
    labels: Path,
    validation_data: Path | None,
    validation_labels: Path | None,
) -> dict[str, Path]:
    files = {"model": model, "data": data, "labels": labels}
    if (validation_data is None) != (validation_labels is None):
        fail("give both --validation-data and --validation-labels, or neither")
    if validation_data is not None and validation_labels is not None:
        files |= {"validation_data": validation_data, "validation_labels": validation_labels}
    return files


def _numeric(files: dict[str, Path], trust: bool, scratch: Path) -> dict[str, Path]:
    """Object arrays: refused with the reason, or converted here if the requestor trusts them."""
    converted = dict(files)
    for kind in [k for k in files if k != "model"]:
        if not is_object_array(files[kind]):
            continue
        if not trust:
            fail(f"the {kind} file {files[kind].name} cannot be uploaded: {TRUST_EXPLANATION}")
        try:
            converted[kind] = numeric_copy(files[kind], scratch / f"{kind}.npy")
        except ValueError as exc:
            fail(str(exc))
        console.print(f"converted the trusted object array {files[kind].name} to a numeric copy")
    return converted


def _create_and_upload(
    files: dict[str, Path],
    params: Hyperparameters,
    name: str,
    start: bool,
    wait: bool,
    client: DaigClient,
) -> str:
    try:
        project_id = str(client.create_project(name, params).id)
        console.print(f"created project [bold]{project_id}[/]")
        try:
            _upload(client, project_id, files)
        except (ClientError, KeyboardInterrupt):
            _discard(client, project_id)
            raise
        _show_estimate(client, project_id)
        if not (start or wait):
            console.print(f"start it with: daig project start {project_id[:8]}")
        if start or wait:
            client.start(project_id)
            console.print("training started")
        if wait:
            _wait(client, project_id)
    except ClientError as exc:
        fail(str(exc))
    return project_id


def _show_estimate(client: DaigClient, project_id: str) -> None:
    """The cost and time estimate, before Start; a server without estimates only loses them."""
    try:
        console.print(view.estimate_text(client.estimate(project_id)))
    except ClientError as exc:
        console.print(f"[yellow]no estimate: {exc}[/]")


def _check_locally(files: dict[str, Path], params: Hyperparameters) -> None:
    metas = {}
    try:
        for kind, path in files.items():
            metas[kind] = check_file(kind, path).meta
        check_together(metas)
        check_against_data(params, NpyHeader.from_json(metas["data"]).rows)
    except (FileRejected, ValueError) as exc:
        fail(str(exc))
    rows = metas["data"]["shape"][0]
    parameters = metas["model"].get("parameters")
    console.print(
        f"model: {metas['model']['class_name']}"
        + (
            f" with {parameters:,} parameters"
            if parameters
            else " (.keras, converted by the server)"
        )
        + f"; data: {rows:,} rows of shape {tuple(metas['data']['shape'][1:])}"
    )


def _discard(client: DaigClient, project_id: str) -> None:
    """Don't leave a half-uploaded project behind."""
    try:
        client.delete_project(project_id)
        console.print(f"deleted the incomplete project {project_id}")
    except ClientError as exc:
        console.print(f"[yellow]could not delete the incomplete project {project_id}: {exc}[/]")


def _upload(client: DaigClient, project_id: str, files: dict[str, Path]) -> None:
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=console,
    ) as progress:
        for kind, path in files.items():
            bar = progress.add_task(f"upload {kind:<6}", total=path.stat().st_size)
            client.upload_file(project_id, kind, path, progress=_advancer(progress, bar))


def _advancer(progress: Progress, bar: TaskID) -> Callable[[int], None]:
    return lambda n: progress.advance(bar, n)


@app.command("start")
@password_options
def start_project(
    project_id: str = ProjectArg,
    server: str = ServerOpt,
    user: str = UserOpt,
    password: str = PasswordOpt,
) -> None:
    """Show the cost and time estimate, then start training an uploaded project."""
    client = session.connect(server, user, password)
    try:
        project_id = ids.resolve(client, project_id)
        _show_estimate(client, project_id)
        client.start(project_id)
    except ClientError as exc:
        fail(str(exc))
    console.print("training started")


@app.command()
@password_options
def status(
    project_id: str = ProjectArg,
    server: str = ServerOpt,
    user: str = UserOpt,
    password: str = PasswordOpt,
) -> None:
    """Show a project's state, round, contributors and per-round metrics."""
    client = session.connect(server, user, password)
    try:
        project_id = ids.resolve(client, project_id)
        project, rounds = client.project(project_id), client.rounds(project_id)
    except ClientError as exc:
        fail(str(exc))
    console.print(view.summary(project))
    if project.state == "created":
        _show_estimate(client, project_id)
    if rounds:
        console.print(view.rounds_table(rounds))


def _lifecycle(
    action: str, project_id: str, server: str | None, user: str | None, password: str | None
) -> None:
    client = session.connect(server, user, password)
    try:
        project: ProjectOut = getattr(client, action)(ids.resolve(client, project_id))
    except ClientError as exc:
        fail(str(exc))
    console.print(view.summary(project))


@app.command()
@password_options
def pause(
    project_id: str = ProjectArg,
    server: str = ServerOpt,
    user: str = UserOpt,
    password: str = PasswordOpt,
) -> None:
    """Pause: no new tasks; running tasks stop and are given out again on resume."""
    _lifecycle("pause", project_id, server, user, password)


@app.command()
@password_options
def resume(
    project_id: str = ProjectArg,
    server: str = ServerOpt,
    user: str = UserOpt,
    password: str = PasswordOpt,
) -> None:
    """Resume a paused project from the same round."""
    _lifecycle("resume", project_id, server, user, password)


@app.command()
@password_options
def cancel(
    project_id: str = ProjectArg,
    server: str = ServerOpt,
    user: str = UserOpt,
    password: str = PasswordOpt,
) -> None:
    """Cancel for good; every claim is released; the current model stays downloadable."""
    _lifecycle("cancel", project_id, server, user, password)


@app.command()
@password_options
def delete(
    project_id: str = ProjectArg,
    server: str = ServerOpt,
    user: str = UserOpt,
    password: str = PasswordOpt,
) -> None:
    """Delete a project that is not training (its files, results and models too)."""
    client = session.connect(server, user, password)
    try:
        project_id = ids.resolve(client, project_id)
        client.delete_project(project_id)
    except ClientError as exc:
        fail(str(exc))
    console.print(f"deleted project {project_id}")


@app.command("list")
@password_options
def list_projects(
    server: str = ServerOpt, user: str = UserOpt, password: str = PasswordOpt
) -> None:
    """List your projects."""
    client = session.connect(server, user, password)
    try:
        projects = client.projects()
    except ClientError as exc:
        fail(str(exc))
    table = Table("name", "state", "round", "progress")
    table.add_column("id", no_wrap=True, overflow="fold", min_width=36)  # whole, never cut
    for p in projects:
        table.add_row(
            p.name, p.state, f"{p.round}/{p.total_rounds or '?'}", f"{p.progress:.0%}", str(p.id)
        )
    console.print(table)


@app.command("wait")
@password_options
def wait_project(
    project_id: str = ProjectArg,
    server: str = ServerOpt,
    user: str = UserOpt,
    password: str = PasswordOpt,
) -> None:
    """Show progress until the project is done, failed or cancelled."""
    client = session.connect(server, user, password)
    try:
        _wait(client, ids.resolve(client, project_id))
    except ClientError as exc:
        fail(str(exc))


def _wait(client: DaigClient, project_id: str) -> None:
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("round {task.fields[rounds]}"),
        TextColumn("{task.fields[elapsed]}"),
        TextColumn("{task.fields[metrics]}"),
        console=console,
    ) as progress:
        bar = progress.add_task("queued", total=None, metrics="", rounds="?", elapsed="")
        while True:
            project = client.project(project_id)
            metrics = project.latest_metrics or {}
            shown = "  ".join(
                f"{k} {v:.3f}"
                for k, v in metrics.items()
                if k in ("loss", "accuracy", "val_loss", "val_accuracy")
            )
            elapsed = project.elapsed_seconds
            progress.update(
                bar,
                # the server's clock of training time: it stands still while paused
                elapsed="" if elapsed is None else duration_text(elapsed),
                description=project.waiting_hint or project.state,
                total=project.total_rounds,
                completed=project.round,
                metrics=shown,
                rounds=f"{project.round}/{project.total_rounds or '?'}",
            )
            if project.state in TERMINAL:
                break
            time.sleep(1.0)
    if project.state != "done":
        fail(f"project {project.state}: {project.error or 'see daig project status'}")
    console.print(f"[green]training finished[/] after {project.total_rounds} rounds")


@app.command()
@password_options
def download(
    project_id: str = ProjectArg,
    output: Path = typer.Option(..., "-o", "--output", dir_okay=False, help="Where to save (.h5)."),
    server: str = ServerOpt,
    user: str = UserOpt,
    password: str = PasswordOpt,
) -> None:
    """Download the current model (final when done) as a Keras .h5 file."""
    client = session.connect(server, user, password)
    try:
        project_id = ids.resolve(client, project_id)
    except ClientError as exc:
        fail(str(exc))
    with Progress(
        TextColumn("download"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=console,
    ) as progress:
        bar = progress.add_task("model", total=None)

        def advance(n: int, total: int | None) -> None:
            progress.update(bar, total=total, advance=n)

        try:
            info = client.download_model(project_id, output, progress=advance)
        except ClientError as exc:
            fail(str(exc))
    version = info.weights_version or "as uploaded"
    console.print(f"saved {output} (weights version {version})")
