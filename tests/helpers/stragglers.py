"""``make_straggler``: a claim made late by hand, and the scheduler's pass that re-issues it."""

from __future__ import annotations

import uuid

from sqlalchemy import Engine, text

from daig.broker import BrokerSession
from daig_scheduler.handlers import Scheduler


def make_straggler(
    engine: Engine,
    scheduler: Scheduler,
    broker_session: BrokerSession,
    project_id: uuid.UUID,
    claim_id: uuid.UUID,
) -> None:
    """Move the claim's start 60 s back (past the 30 s floor and 1.5x a finished task of these
    tests) and reconcile its project, so the scheduler gives its task out again."""
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE claims SET claimed_at = now() - interval '60 seconds' WHERE id = :id"),
            {"id": claim_id},
        )
    scheduler.reconcile(project_id, broker_session)
