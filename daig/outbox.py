"""The transactional outbox: messages decided in a transaction, published after it commits.

A transaction that decides to send a message (a round closes and opens the next one; a claim
frees a place in a project's dispatch window) stages it here, in the same transaction, so the
decision and the message commit or vanish together. Whoever committed it publishes it at once
(``OutboxRelay.drain``); the scheduler drains whatever is left behind by a crash in between.
Rows are deleted in the transaction that publishes them and only committed once the broker
confirmed every message, so a message is published at least once; consumers are idempotent.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from daig import metrics
from daig.contract.messages import Message, TrainTask
from daig.db import raw
from daig.publishing import ConfirmingChannel, Outgoing
from daig.topology import Route

log = logging.getLogger(__name__)
DRAIN_BATCH = 500

_TAKE = text(
    "DELETE FROM outbox WHERE id IN ("
    " SELECT id FROM outbox ORDER BY id LIMIT :limit FOR UPDATE SKIP LOCKED)"
    " RETURNING id, exchange, routing_key, message_type, message_id, expiration_ms, body,"
    " created_at"
)


@dataclass(frozen=True)
class Staged:
    route: Route
    message: Message
    expiration_ms: int | None = None


_STAGE = text(
    "INSERT INTO outbox (exchange, routing_key, message_type, message_id, expiration_ms, body)"
    " VALUES (:exchange, :routing_key, :message_type, :message_id, :expiration_ms, :body)"
)


def stage(target: raw.Target, staged: Sequence[Staged]) -> None:
    """Add messages to the outbox in the caller's transaction (a session or a raw cursor)."""
    raw.run_many(
        target,
        _STAGE,
        [
            {
                "exchange": item.route.exchange,
                "routing_key": item.route.publish_key,
                "message_type": item.message.type_name,
                "message_id": item.message.message_id,
                "expiration_ms": item.expiration_ms,
                "body": item.message.model_dump_json().encode(),
            }
            for item in staged
        ],
    )


class OutboxRelay:
    """Publishes committed outbox rows through a confirming channel, oldest first."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def drain(self, channel: ConfirmingChannel, *, max_batches: int = 100) -> int:
        """Publish what is in the outbox (up to ``max_batches`` x 500 rows); how many."""
        published = 0
        for _ in range(max_batches):
            with self._sessions.begin() as session:
                # Losing this commit in a crash of Postgres itself only publishes the rows
                # again (consumers are idempotent): it need not wait for the disk.
                session.execute(text("SET LOCAL synchronous_commit TO OFF"))
                rows = session.execute(_TAKE, {"limit": DRAIN_BATCH}).all()
                # Publish before the deletion commits: a failure rolls the rows back.
                channel.publish_many([_outgoing(row) for row in rows])
            published += len(rows)
            tasks = sum(1 for row in rows if row.message_type == TrainTask.type_name)
            metrics.TASKS_PUBLISHED.inc(tasks)
            if len(rows) < DRAIN_BATCH:
                break
        if published:
            log.debug("outbox: published %s message(s)", published)
        return published


def _outgoing(row: Any) -> Outgoing:
    return Outgoing(
        exchange=row.exchange,
        routing_key=row.routing_key,
        body=bytes(row.body),
        message_id=str(row.message_id),
        message_type=row.message_type,
        timestamp=int(row.created_at.timestamp()),
        expiration_ms=row.expiration_ms,
    )
