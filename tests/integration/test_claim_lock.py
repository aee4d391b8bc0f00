"""Claims take no project-wide lock: they neither wait for nor block whoever holds the project row.

A session stands in for the aggregator recording a batch (or the scheduler): it holds the
project row ``FOR NO KEY UPDATE``. With the default contributor cap (K), claims of that
project's tasks go through at once; only when the cap can bind do they queue for the row, so
that counting the tasks in flight stays exact.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from daig.client import DaigClient
from daig.db.models import Project
from daig.hyperparams import Hyperparameters
from tests.helpers.projects import Started
from tests.helpers.queues import drain_tasks


def _hold_project_row(sessions: sessionmaker[Session], project_id: Any) -> Session:
    session = sessions()
    session.begin()
    session.scalar(select(Project).where(Project.id == project_id).with_for_update(key_share=True))
    return session


def test_claims_do_not_wait_for_the_project_row(
    start_project: Callable[..., Started],
    sessions: sessionmaker[Session],
    make_user: Callable[..., DaigClient],
    api_server: Any,
    amqp_url: str,
) -> None:
    started = start_project(Hyperparameters(total_tasks=3, task_size=3))
    tasks = drain_tasks(amqp_url)
    providers = [make_user(api_server.url, f"provider{n}") for n in range(3)]
    holder = _hold_project_row(sessions, started.id)  # e.g. the aggregator recording a batch
    try:
        began = time.monotonic()
        grants = [p.claim(t.task_id, "agent") for p, t in zip(providers, tasks, strict=True)]
        took = time.monotonic() - began
    finally:
        holder.rollback()
        holder.close()
    assert sorted(g.shard for g in grants) == [0, 1, 2]
    assert took < 10.0  # they did not queue behind the held row (that would be forever)


def test_when_the_cap_binds_claims_queue_for_the_project_row(
    start_project: Callable[..., Started],
    sessions: sessionmaker[Session],
    make_user: Callable[..., DaigClient],
    api_server: Any,
    amqp_url: str,
) -> None:
    started = start_project(Hyperparameters(total_tasks=3, task_size=3, max_contributors=2))
    task = drain_tasks(amqp_url)[0]
    provider = make_user(api_server.url, "provider")
    outcome: dict[str, Any] = {}

    def claim() -> None:
        outcome["grant"] = provider.claim(task.task_id, "agent")
        outcome["at"] = time.monotonic()

    holder = _hold_project_row(sessions, started.id)
    claimer = threading.Thread(target=claim)
    try:
        claimer.start()
        time.sleep(1.0)
        assert "grant" not in outcome  # waiting for the row: the count must be exact
        released = time.monotonic()
    finally:
        holder.rollback()
        holder.close()
    claimer.join(30)
    assert outcome["grant"].task_id == task.task_id
    assert outcome["at"] >= released
