"""A bounded, thread-safe cache of what a started project fixes for good, by project id.

The API's claim catalog and the aggregator's result checks both keep such facts in memory
(files, sizes, schema, hyperparameters: none change once a project starts). What does
change, the project's state and round, must never be cached here.
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

from sqlalchemy.orm import Session, sessionmaker

Facts = TypeVar("Facts")


class StartedProjectCache(Generic[Facts]):
    """Facts loaded once per project by ``load`` (None: unknown or not started, not cached)."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        load: Callable[[Session, uuid.UUID], Facts | None],
        max_projects: int = 4096,
    ) -> None:
        self._sessions = sessions
        self._load = load
        self._facts: OrderedDict[uuid.UUID, Facts] = OrderedDict()
        self._max = max_projects
        self._lock = threading.Lock()

    def get(self, project_id: uuid.UUID) -> Facts | None:
        with self._lock:
            if project_id in self._facts:
                self._facts.move_to_end(project_id)
                return self._facts[project_id]
        with self._sessions() as session:
            facts = self._load(session, project_id)
        if facts is not None:
            with self._lock:
                self._facts[project_id] = facts
                while len(self._facts) > self._max:
                    self._facts.popitem(last=False)
        return facts
