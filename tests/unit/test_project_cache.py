"""StartedProjectCache: loads once, never caches a miss, stays within its bound."""

from __future__ import annotations

import contextlib
import uuid
from typing import Any

from daig.project_cache import StartedProjectCache


def counting_cache(known: dict[uuid.UUID, str], max_projects: int = 4096) -> tuple[Any, list]:
    loads: list[uuid.UUID] = []

    def load(_session: object, project_id: uuid.UUID) -> str | None:
        loads.append(project_id)
        return known.get(project_id)

    sessions: Any = contextlib.nullcontext  # a session factory whose sessions are unused
    return StartedProjectCache(sessions, load, max_projects), loads


def test_facts_are_loaded_once() -> None:
    project = uuid.uuid4()
    cache, loads = counting_cache({project: "facts"})
    assert cache.get(project) == "facts"
    assert cache.get(project) == "facts"
    assert loads == [project]


def test_a_project_not_started_yet_is_asked_again() -> None:
    project = uuid.uuid4()
    known: dict[uuid.UUID, str] = {}
    cache, loads = counting_cache(known)
    assert cache.get(project) is None
    known[project] = "started"
    assert cache.get(project) == "started"
    assert loads == [project, project]


def test_the_least_recently_used_project_is_dropped_past_the_bound() -> None:
    a, b, c = (uuid.uuid4() for _ in range(3))
    cache, loads = counting_cache({a: "a", b: "b", c: "c"}, max_projects=2)
    cache.get(a)
    cache.get(b)
    cache.get(a)  # b is now the least recently used
    cache.get(c)
    loads.clear()
    cache.get(a)
    cache.get(b)
    assert loads == [b]
