"""What checking a result needs to know about its project, cached: fixed once it started."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from daig.db.models import Project
from daig.dispatch import RoundPlan
from daig.project_cache import StartedProjectCache
from daig.weights.schema import WeightSchema
from daig.weights.stream import max_stream_bytes


@dataclass(frozen=True)
class ProjectFacts:
    id: uuid.UUID
    schema: WeightSchema
    schema_hash: str
    plan: RoundPlan
    max_delta_bytes: int  # the largest weight stream a delta of this model can honestly be


class FactsCache(StartedProjectCache[ProjectFacts]):
    """The started projects' facts, loaded once each."""

    def __init__(self, sessions: sessionmaker[Session], max_projects: int = 4096) -> None:
        super().__init__(sessions, _load, max_projects)


def _load(session: Session, project_id: uuid.UUID) -> ProjectFacts | None:
    project = session.get(Project, project_id)
    return of_project(project) if project is not None else None


def of_project(project: Project) -> ProjectFacts | None:
    if project.weight_schema is None or project.schema_hash is None:
        return None
    plan = RoundPlan.of(project)
    schema = WeightSchema.from_json(project.weight_schema)
    return ProjectFacts(project.id, schema, project.schema_hash, plan, max_stream_bytes(schema))
