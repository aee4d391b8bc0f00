"""Refused claims, counted per account: the other half of "did this agent try to claim?".

An honest agent acks a task message after a refused claim (the task is stale, taken, done, or
a replica of its own trust group's work) and requeues it after a contributor-cap refusal, so
the claims table alone undercounts what it tried. The API counts those refusals here, per
account and ``REFUSAL_BUCKET_SECONDS``; the scheduler's black-hole check reads them. A task id
the server does not know (``unknown_task``) counts too: a deleted project's task messages stay
queued until they expire, and every honest agent that takes one is refused that way. (An
attacker could pad its tries with made-up ids, as with repeated claims of one done task: the
check catches agents that do not try, it is not proof against one that pretends to.) A
quarantined account's refusals are not counted.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import text

from daig.db import raw

REFUSAL_BUCKET_SECONDS = 10
# ApiError reasons of claims.py that mean "this was a real task message, tried".
COUNTED_REASONS = frozenset(
    {
        "project_not_running",
        "stale_round",
        "task_done",
        "task_claimed",
        "contributor_cap",
        "own_replica",
        "unknown_task",
    }
)

_RECORD = text(
    "INSERT INTO claim_refusals (provider_id, bucket, refused) VALUES (:provider, :bucket, 1)"
    " ON CONFLICT (provider_id, bucket) DO UPDATE SET refused = claim_refusals.refused + 1"
)


def bucket_of(moment: datetime) -> datetime:
    """The start of the bucket ``moment`` falls in."""
    seconds = int(moment.timestamp()) // REFUSAL_BUCKET_SECONDS * REFUSAL_BUCKET_SECONDS
    return datetime.fromtimestamp(seconds, UTC)


def record(target: raw.Target, *, provider_id: int, reason: str, now: datetime) -> bool:
    """Count one refused claim of ``provider_id`` if ``reason`` counts (caller commits)."""
    if reason not in COUNTED_REASONS:
        return False
    raw.run_many(target, _RECORD, [{"provider": provider_id, "bucket": bucket_of(now)}])
    return True
