"""The requestor's blocking API flows, called in ``Worker``s (never on the UI thread).

Each takes the logged-in ``Account``; transfers report ``Transfer`` progress through the
worker's ``progress`` callable, which raises ``Cancelled`` when the person cancels.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from daig.client import ClientError, DaigClient, DownloadedModel
from daig.contract.http import EstimateOut, ProjectOut, RoundOut
from daig.hyperparams import Hyperparameters
from requestor_gui.account import Account
from requestor_gui.errors import Cancelled, describe

log = logging.getLogger(__name__)

VALIDATION_KINDS = ("validation_data", "validation_labels")
LIFECYCLE = ("start", "pause", "resume", "cancel")


@dataclass(frozen=True)
class Transfer:
    """Bytes of one file moved so far (``total`` None while unknown)."""

    kind: str
    done: int
    total: int | None


@dataclass(frozen=True)
class Detail:
    project: ProjectOut
    rounds: list[RoundOut]
    estimate: EstimateOut | None = None  # cost and time, while it waits for Start


@dataclass
class Created:
    project: ProjectOut
    warnings: list[str] = field(default_factory=list)


def list_projects(account: Account) -> list[ProjectOut]:
    return account.call(lambda client: client.projects())


def project_detail(account: Account, project_id: str) -> Detail:
    def fetch(client: DaigClient) -> Detail:
        project = client.project(project_id)
        estimate = None
        if project.state == "created":
            try:
                estimate = client.estimate(project_id)
            except ClientError as exc:  # an older server: the page works without it
                if exc.status == 401:
                    raise  # the account logs in again and retries
                log.info("project %s: no estimate (%s)", project_id, exc)
        return Detail(project, client.rounds(project_id), estimate)

    return account.call(fetch)


def change_state(account: Account, project_id: str, action: str) -> ProjectOut:
    """``start``, ``pause``, ``resume`` or ``cancel`` the project; returns it."""
    if action not in LIFECYCLE:
        raise ValueError(f"unknown action {action!r}")
    changed: ProjectOut = account.call(lambda client: getattr(client, action)(project_id))
    return changed


TRAINING = ("queued", "running")  # states the server refuses to delete


def delete_project(account: Account, project_id: str, *, cancel_first: bool = False) -> None:
    """Delete the project with its files, results and models.

    A project still training is refused by the server; with ``cancel_first`` it is cancelled
    (every volunteer stops) and then deleted.
    """

    def delete(client: DaigClient) -> None:
        if cancel_first and client.project(project_id).state in TRAINING:
            client.cancel(project_id)
        client.delete_project(project_id)

    account.call(delete)


def create_project(
    account: Account,
    name: str,
    params: Hyperparameters,
    files: dict[str, Path],
    *,
    start: bool,
    progress: Callable[[Transfer], None],
) -> Created:
    """Create the project, upload its files, optionally start it.

    A failed or cancelled upload deletes the half-made project, like the CLI. Validation
    files the server does not accept (yet) become a warning, not a failure: they are optional.
    """
    created = Created(account.call(lambda client: client.create_project(name, params)))
    project_id = str(created.project.id)
    try:
        created.warnings += _upload_all(account, project_id, files, progress)
        if start:
            created.project = change_state(account, project_id, "start")
    except (ClientError, Cancelled, OSError):
        if created.project.state == "created":
            _discard(account, project_id)
        raise
    return created


def _upload_all(
    account: Account, project_id: str, files: dict[str, Path], progress: Callable[[Transfer], None]
) -> list[str]:
    warnings: list[str] = []
    for kind, path in files.items():
        if warnings and kind in VALIDATION_KINDS:
            progress(Transfer(kind, 0, 0))  # the server refused the pair already
            continue
        try:
            _upload(account, project_id, kind, path, progress)
        except ClientError as exc:
            # An older server answers 404 "unknown file kind": the pair is optional.
            if kind not in VALIDATION_KINDS or exc.status != 404:
                raise
            warnings.append(_validation_refused(exc))
            progress(Transfer(kind, 0, 0))
    return warnings


def _upload(
    account: Account, project_id: str, kind: str, path: Path, progress: Callable[[Transfer], None]
) -> None:
    total = path.stat().st_size
    sent = 0
    progress(Transfer(kind, 0, total))

    def advance(n: int) -> None:
        nonlocal sent
        sent += n
        progress(Transfer(kind, sent, total))

    account.call(lambda client: client.upload_file(project_id, kind, path, progress=advance))
    progress(Transfer(kind, total, total))


def _validation_refused(exc: ClientError) -> str:
    return (
        "The server does not accept validation files yet "
        f"({describe(exc).rstrip('.')}); the project was created without them and trains "
        "as usual. Use the validation split to hold out part of each shard instead."
    )


def _discard(account: Account, project_id: str) -> None:
    """Don't leave a half-uploaded project behind."""
    try:
        account.call(lambda client: client.delete_project(project_id))
        log.info("project %s: deleted after an incomplete upload", project_id)
    except ClientError as exc:
        log.warning("project %s: could not delete the incomplete project (%s)", project_id, exc)


def download_model(
    account: Account, project_id: str, target: Path, *, progress: Callable[[Transfer], None]
) -> DownloadedModel:
    """Save the current model to ``target``."""
    done = 0

    def advance(n: int, total: int | None) -> None:
        nonlocal done
        done += n
        progress(Transfer("model", done, total))

    def fetch(client: DaigClient) -> DownloadedModel:
        nonlocal done
        done = 0
        return client.download_model(project_id, target, progress=advance)

    try:
        return account.call(fetch)
    except Cancelled:
        target.with_name(f".{target.name}.part").unlink(missing_ok=True)
        raise
