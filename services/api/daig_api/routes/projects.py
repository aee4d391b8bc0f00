"""Projects: create, list, status, start, per-round metrics, model download."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

from fastapi import APIRouter
from fastapi.responses import FileResponse
from sqlalchemy import delete as sql_delete
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.background import BackgroundTask

from daig import keys, tempdirs
from daig.broker import Publisher
from daig.contract.http import ProjectCreate, ProjectOut, RoundOut
from daig.contract.messages import EventKind, ProjectEvent
from daig.credits.units import to_units
from daig.db.models import Project, ProjectState, Result, User
from daig.topology import EVENTS
from daig_api import crud, lifecycle, modelfile
from daig_api.credit_check import require_credit
from daig_api.deps import BlobsDep, CurrentUser, PublisherDep, SessionDep, SettingsDep
from daig_api.errors import ApiError

router = APIRouter(prefix="/v1/projects", tags=["projects"])
log = logging.getLogger(__name__)


@router.post("", status_code=201)
def create_project(body: ProjectCreate, user: CurrentUser, session: SessionDep) -> ProjectOut:
    """Create a project with its hyperparameters; upload its files next."""
    project = Project(
        id=uuid.uuid4(),
        owner_id=user.id,
        name=body.name,
        state=ProjectState.CREATED,
        current_round=0,
        **body.column_values(),
    )
    session.add(project)
    session.commit()
    return crud.project_out(session=session, project=project)


@router.get("")
def list_projects(user: CurrentUser, session: SessionDep) -> list[ProjectOut]:
    """Your projects, newest first."""
    projects = session.scalars(
        select(Project).where(Project.owner_id == user.id).order_by(Project.created_at.desc())
    )
    return [crud.project_out(session=session, project=p) for p in projects]


@router.get("/{project_id}")
def get_project(project_id: uuid.UUID, user: CurrentUser, session: SessionDep) -> ProjectOut:
    """State, round r of R, accepted tasks, active contributors, latest metrics."""
    project = crud.get_owned_project(session=session, project_id=project_id, user=user)
    return crud.project_out(session=session, project=project)


@router.post("/{project_id}/start")
def start_project(
    project_id: uuid.UUID,
    user: CurrentUser,
    session: SessionDep,
    blobs: BlobsDep,
    publisher: PublisherDep,
    settings: SettingsDep,
) -> ProjectOut:
    """Check the files, hyperparameters and credit together and queue the project."""
    project = crud.get_owned_project(
        session=session, project_id=project_id, user=user, for_update=True
    )
    lifecycle.start(session=session, blobs=blobs, project=project)
    require_credit(
        session=session,
        project=project,
        grant=to_units(settings.credit_signup_grant),
        replication=settings.replication,
    )
    session.commit()
    _notify(publisher, project, EventKind.PROJECT_STARTED)
    return crud.project_out(session=session, project=project)


@router.delete("/{project_id}", status_code=204)
def delete_project(
    project_id: uuid.UUID, user: CurrentUser, session: SessionDep, blobs: BlobsDep
) -> None:
    """Delete a project that is not training, with its files, results and models."""
    project = crud.get_owned_project(
        session=session, project_id=project_id, user=user, for_update=True
    )
    if project.state in (ProjectState.QUEUED, ProjectState.RUNNING):
        raise ApiError(
            409,
            f"the project is {project.state}; it cannot be deleted while it trains: cancel it "
            f"first (daig project cancel {project.id}, or Cancel training in the GUI), then "
            "delete it",
            "project_active",
        )
    session.execute(sql_delete(Result).where(Result.project_id == project.id))
    session.delete(project)
    session.commit()
    blobs.delete_prefix(keys.project_prefix(project.id))


@router.post("/{project_id}/pause")
def pause_project(
    project_id: uuid.UUID, user: CurrentUser, session: SessionDep, publisher: PublisherDep
) -> ProjectOut:
    """Stop handing out tasks; running tasks stop and are given out again on resume."""
    return _change(project_id, user, session, publisher, lifecycle.pause)


@router.post("/{project_id}/resume")
def resume_project(
    project_id: uuid.UUID, user: CurrentUser, session: SessionDep, publisher: PublisherDep
) -> ProjectOut:
    """Continue a paused project from the same round."""
    return _change(project_id, user, session, publisher, lifecycle.resume)


@router.post("/{project_id}/cancel")
def cancel_project(
    project_id: uuid.UUID, user: CurrentUser, session: SessionDep, publisher: PublisherDep
) -> ProjectOut:
    """Stop for good and release every claim; the current model stays downloadable."""
    return _change(project_id, user, session, publisher, lifecycle.cancel)


def _change(
    project_id: uuid.UUID,
    user: User,
    session: Session,
    publisher: Publisher,
    change: Callable[..., None],
) -> ProjectOut:
    project = crud.get_owned_project(
        session=session, project_id=project_id, user=user, for_update=True
    )
    change(session=session, project=project)
    session.commit()
    log.info("project %s: %s", project.id, project.state)
    _notify(publisher, project, EventKind.PROJECT_CHANGED)
    return crud.project_out(session=session, project=project)


@router.get("/{project_id}/rounds")
def list_rounds(project_id: uuid.UUID, user: CurrentUser, session: SessionDep) -> list[RoundOut]:
    """Per-round timing, result counts and training metrics."""
    crud.get_owned_project(session=session, project_id=project_id, user=user)
    return crud.rounds_out(session=session, project_id=project_id)


@router.get("/{project_id}/model", response_class=FileResponse)
def download_model(
    project_id: uuid.UUID, user: CurrentUser, session: SessionDep, blobs: BlobsDep
) -> FileResponse:
    """The current model as ``.h5``: the final one when done, else the newest weights."""
    project = crud.get_owned_project(session=session, project_id=project_id, user=user)
    files = crud.files_of(session=session, project_id=project.id)
    if "model" not in files:
        raise ApiError(404, "the project has no model yet; upload one first", "no_model")
    path, version = modelfile.current_model(
        blobs=blobs, project=project, model_key=files["model"].blob_key
    )
    suffix = "uploaded" if version is None else f"v{version}"
    return FileResponse(
        path,
        media_type="application/x-hdf5",
        filename=f"{project.name}-{suffix}.h5",
        headers={"X-DAIG-Weights-Version": "" if version is None else str(version)},
        background=BackgroundTask(tempdirs.remove, path.parent),
    )


def _notify(publisher: Publisher, project: Project, kind: EventKind) -> None:
    """Tell the scheduler now; if the broker is away it finds the change on its next tick."""
    try:
        publisher.publish(
            EVENTS, ProjectEvent(project_id=project.id, round=project.current_round, kind=kind)
        )
    except Exception:
        log.warning("project %s: could not publish %s; the scheduler will poll", project.id, kind)
