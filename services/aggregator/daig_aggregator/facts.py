"""What checking a result needs to know about its project, cached: fixed once it started."""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from daig.db.models import Project
from daig.dispatch import RoundPlan
from daig.weights.schema import WeightSchema
from daig.weights.stream import max_stream_bytes


@dataclass(frozen=True)
class ProjectFacts:
    id: uuid.UUID
    schema: WeightSchema
    schema_hash: str
    plan: RoundPlan
    max_delta_bytes: int  # the largest weight stream a delta of this model can honestly be


class FactsCache:
    def __init__(self, sessions: sessionmaker[Session], max_projects: int = 4096) -> None:
        self._sessions = sessions
        self._facts: OrderedDict[uuid.UUID, ProjectFacts] = OrderedDict()
        self._max = max_projects
        self._lock = threading.Lock()

    def get(self, project_id: uuid.UUID) -> ProjectFacts | None:
        """The started project's facts; None if it does not exist or never started."""
        with self._lock:
            if project_id in self._facts:
                self._facts.move_to_end(project_id)
                return self._facts[project_id]
        with self._sessions() as session:
            project = session.get(Project, project_id)
            facts = of_project(project) if project is not None else None
        if facts is not None:
            with self._lock:
                self._facts[project_id] = facts
                while len(self._facts) > self._max:
                    self._facts.popitem(last=False)
        return facts


def of_project(project: Project) -> ProjectFacts | None:
    if project.weight_schema is None or project.schema_hash is None:
        return None
    plan = RoundPlan(
        project.id, project.total_tasks, project.task_size, project.max_contributors, project.share
    )
    schema = WeightSchema.from_json(project.weight_schema)
    return ProjectFacts(project.id, schema, project.schema_hash, plan, max_stream_bytes(schema))
