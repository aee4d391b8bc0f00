"""Claims step aside for the project row lock, so result handling is not starved by them.

A session stands in for the aggregator (or the scheduler): it queues for the project row with
``SELECT ... FOR UPDATE`` while a claim is already waiting for the same row. The aggregator
must get the row first, and the claim must still succeed afterwards.
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
from tests.integration.conftest import Started, drain_tasks


def test_a_waiting_claim_lets_a_later_row_locker_go_first_then_succeeds(
    start_project: Callable[..., Started],
    sessions: sessionmaker[Session],
    make_user: Callable[..., DaigClient],
    api_server: Any,
    amqp_url: str,
) -> None:
    started = start_project(Hyperparameters(total_tasks=2, task_size=2))
    task = drain_tasks(amqp_url)[0]
    provider = make_user(api_server.url, "provider")
    marks: dict[str, float] = {}
    outcome: dict[str, Any] = {}
    row = select(Project).where(Project.id == started.id).with_for_update()

    def claim() -> None:
        try:
            outcome["grant"] = provider.claim(task.task_id, "agent-1")
        except Exception as exc:  # reported by the assertion below
            outcome["error"] = exc
        marks["claimed"] = time.monotonic()

    def aggregator() -> None:
        with sessions.begin() as session:
            session.scalar(row)
            marks["aggregator_locked"] = time.monotonic()
            time.sleep(0.5)
            marks["aggregator_released"] = time.monotonic()

    with sessions.begin() as holder:
        holder.scalar(row)  # someone (a round closing) holds the row
        claimer = threading.Thread(target=claim)
        claimer.start()
        time.sleep(0.5)  # the claim is now waiting for the row
        locker = threading.Thread(target=aggregator)
        locker.start()
        time.sleep(0.5)  # the aggregator queues behind the holder too
        assert "claimed" not in marks and "aggregator_locked" not in marks
    locker.join(30)
    claimer.join(30)
    assert "error" not in outcome, outcome.get("error")
    assert outcome["grant"]["task_id"] == str(task.task_id)
    assert marks["aggregator_locked"] < marks["claimed"]
    assert marks["claimed"] >= marks["aggregator_released"]
