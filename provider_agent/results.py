"""The result message a provider publishes for a task it trained (or failed to train)."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from daig.contract.http import ClaimGrant
from daig.contract.messages import TrainingStatus, TrainResult
from provider_agent.trainer import TrainOutcome


def result_message(
    grant: ClaimGrant,
    outcome: TrainOutcome,
    delta: bytes,
    inline: bool,
    timings: dict[str, float],
    provider_id: int,
) -> TrainResult:
    """The result message of a task: the delta's digest (and the delta itself when
    ``inline``), or why training failed."""
    common: dict[str, Any] = dict(
        project_id=grant.project_id,
        round=grant.round,
        task_id=grant.task_id,
        claim_id=grant.claim_id,
        provider_id=provider_id,
        timings=timings,
    )
    if not outcome.ok:
        return TrainResult(
            status=TrainingStatus.FAILED,
            error=outcome.error,
            resource_limit=outcome.resource_limit,
            **common,
        )
    return TrainResult(
        status=TrainingStatus.TRAINED,
        blob_key=grant.result_key,
        sha256=hashlib.sha256(delta).hexdigest(),
        inline_delta=base64.b64encode(delta).decode() if inline else None,
        schema_hash=grant.schema_hash,
        samples=outcome.samples,
        fit_seconds=outcome.fit_seconds,
        history=outcome.history,
        **common,
    )
