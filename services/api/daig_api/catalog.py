"""What claims need to know about a started project, cached in the API process.

Everything here is fixed once a project starts (its files, sizes, schema and hyperparameters),
so a claim reads it from memory instead of the database. What does change -- the project's
state and round -- is never cached: claims read it in their own transaction.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from daig.db.models import Project, ProjectFile, User
from daig.dispatch import RoundPlan
from daig.npy import NpyHeader
from daig.project_cache import StartedProjectCache
from daig.weights.schema import WeightSchema


@dataclass(frozen=True)
class FileFacts:
    blob_key: str
    sha256: str
    meta: dict[str, Any]

    @property
    def header(self) -> NpyHeader:
        return NpyHeader.from_json(self.meta)


@dataclass(frozen=True)
class ProjectFacts:
    """A started project's immutable facts (no state, no round)."""

    id: uuid.UUID
    owner_id: int
    name: str  # a project's name and its owner's user name never change
    owner_name: str
    total_rows: int
    total_tasks: int
    task_size: int
    max_contributors: int
    share: float
    weight_schema: list[list[Any]]
    schema: WeightSchema
    schema_hash: str
    epochs: int
    batch_size: int
    validation_split: float
    delta_codec: str
    verify_fraction: float
    files: dict[str, FileFacts]

    @property
    def cap_binds(self) -> bool:
        """Whether the contributor cap can stop a claim (a round has only K tasks)."""
        return self.plan.cap_binds

    @property
    def plan(self) -> RoundPlan:
        return RoundPlan(
            self.id, self.total_tasks, self.task_size, self.max_contributors, self.share
        )


class ProjectCatalog(StartedProjectCache[ProjectFacts]):
    """The started projects' claim facts, loaded once each."""

    def __init__(self, sessions: sessionmaker[Session], max_projects: int = 4096) -> None:
        super().__init__(sessions, _load, max_projects)


def _load(session: Session, project_id: uuid.UUID) -> ProjectFacts | None:
    project = session.get(Project, project_id)
    if project is None or project.weight_schema is None or project.total_rows is None:
        return None
    files = session.scalars(select(ProjectFile).where(ProjectFile.project_id == project_id))
    return ProjectFacts(
        id=project.id,
        owner_id=project.owner_id,
        name=project.name,
        owner_name=session.scalar(select(User.username).where(User.id == project.owner_id)) or "",
        total_rows=project.total_rows,
        total_tasks=project.total_tasks,
        task_size=project.task_size,
        max_contributors=project.max_contributors,
        share=project.share,
        weight_schema=project.weight_schema,
        schema=WeightSchema.from_json(project.weight_schema),
        schema_hash=str(project.schema_hash),
        epochs=project.epochs,
        batch_size=project.batch_size,
        validation_split=project.validation_split,
        delta_codec=project.delta_codec,
        verify_fraction=project.verify_fraction,
        files={f.kind: FileFacts(f.blob_key, f.sha256, f.meta) for f in files},
    )
