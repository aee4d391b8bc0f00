"""What providers call for every task -- claim and lease heartbeat -- as plain functions.

Each runs in one worker thread with its own session, given the app's state: the FastAPI
routes call them, and so does the framework-free fast path (``fastpath``), so both serve the
same thing. The token was checked before (no database: accounts are never deleted, so a
valid token names a real user).
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import psycopg2

from daig import metrics, refusals
from daig.contract.http import Lease
from daig.logs import log_context
from daig_api import claims, crud
from daig_api.deps import claim_context
from daig_api.errors import ApiError
from daig_api.grants import build_grant

log = logging.getLogger(__name__)


def claim(state: Any, user_id: int, task_id: uuid.UUID, agent_id: str) -> bytes:
    context = claim_context(state)
    with metrics.CLAIM_SECONDS.time(), log_context(task=task_id):
        connection = state.engine.raw_connection()  # see daig/db/raw.py: no ORM here
        try:
            decision = claims.claim(
                cursor=connection.cursor(),
                catalog=context.catalog,
                policy=context.policy,
                settings=state.settings,
                user_id=user_id,
                task_id=task_id,
                agent_id=agent_id,
            )
            connection.commit()
        except ApiError as exc:
            metrics.CLAIMS_REFUSED.labels(exc.reason).inc()
            _count_refusal(connection, user_id, exc.reason)
            raise
        finally:
            connection.close()  # back to the pool, rolled back if not committed
        if decision.queued:
            context.relay.wake()
        grant = build_grant(
            blobs=state.blobs,
            settings=state.settings,
            facts=decision.facts,
            task=decision.task,
            inline=context.inline_weights,
            urls=context.urls,
        )
    metrics.TASKS_CLAIMED.inc()
    if decision.replicated:
        metrics.REPLICAS_MADE.labels("claim").inc()
    if decision.published_at is not None:
        waited = (crud.now() - decision.published_at).total_seconds()
        metrics.CLAIM_WAIT_SECONDS.observe(max(0.0, waited))
    with log_context(project=grant.project_id, round=grant.round, task=task_id):
        log.info(
            "project %s round %s task %s: claimed by user %s (%s)",
            grant.project_id,
            grant.round + 1,
            task_id,
            user_id,
            agent_id,
        )
    return grant.model_dump_json().encode()


def _count_refusal(connection: Any, user_id: int, reason: str) -> None:
    """Count a refused claim for the black-hole check; never turns the refusal into a 500."""
    try:
        connection.rollback()
        if refusals.record(connection.cursor(), provider_id=user_id, reason=reason, now=crud.now()):
            connection.commit()
    except psycopg2.Error as exc:
        log.warning("user %s: refused claim not counted: %s", user_id, exc)


def heartbeat(state: Any, user_id: int, claim_id: uuid.UUID) -> bytes:
    with state.sessionmaker() as session:
        seconds = claims.heartbeat(
            session=session, settings=state.settings, user_id=user_id, claim_id=claim_id
        )
        session.commit()
    return Lease(claim_id=claim_id, lease_seconds=seconds).model_dump_json().encode()
