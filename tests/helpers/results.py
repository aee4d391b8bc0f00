"""Result messages as a provider would send them, and a volunteer driven by hand.

``Provider`` claims over HTTP and uploads deltas to the grant's presigned URL, as an agent
does; ``random_delta`` makes a small random delta for a weight schema; ``ROWS`` are the shard
sizes of the ten-row ``small_data`` in three shards.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from typing import Any

import httpx
import numpy as np

from daig.client import DaigClient
from daig.contract.http import ClaimGrant
from daig.contract.messages import TrainingStatus, TrainResult
from daig.weights.schema import WeightSchema
from daig.weights.stream import encode_weights
from tests.helpers.queues import drain_tasks

ROWS = {0: 3, 1: 3, 2: 4}  # shard sizes of 10 rows in 3 shards


def trained_result(
    grant: ClaimGrant,
    provider_id: int,
    delta: Sequence[np.ndarray] | None,
    *,
    upload_statuses: tuple[int, ...] = (200, 201),
    **fields: Any,
) -> TrainResult:
    """Upload ``delta`` to the grant's result URL (unless None) and describe it as
    ``provider_id``'s trained result; ``fields`` add to or override the message's fields."""
    body = b""
    if delta is not None:
        body = encode_weights(delta)
        response = httpx.put(grant.result_url, content=body)
        assert response.status_code in upload_statuses, response.text
    values: dict[str, Any] = {
        "project_id": grant.project_id,
        "round": grant.round,
        "task_id": grant.task_id,
        "claim_id": grant.claim_id,
        "provider_id": provider_id,
        "status": TrainingStatus.TRAINED,
        "blob_key": grant.result_key,
        "sha256": hashlib.sha256(body).hexdigest(),
        "schema_hash": grant.schema_hash,
    }
    return TrainResult(**(values | fields))


class Provider:
    """A volunteer driven by hand: claims over HTTP, uploads deltas to the presigned URL."""

    def __init__(self, client: DaigClient) -> None:
        self.client = client
        self.id = client.me().id

    def claim(self, task_id: uuid.UUID) -> ClaimGrant:
        return self.client.claim(task_id, f"agent-{self.id}")

    def result(
        self, grant: ClaimGrant, delta: Sequence[np.ndarray] | None, **fields
    ) -> TrainResult:
        """Upload ``delta`` (unless None) and describe it in a result message."""
        values: dict[str, Any] = {
            "samples": ROWS.get(grant.shard, 1),
            "fit_seconds": 1.5,
            "history": {"loss": [2.0, 1.0 + grant.shard]},
        }
        return trained_result(grant, self.id, delta, **(values | fields))


def random_delta(schema: WeightSchema, seed: int, scale: float = 0.01) -> list[np.ndarray]:
    """A delta of ``schema``'s shapes and dtypes: seeded normal noise times ``scale``."""
    rng = np.random.default_rng(seed)
    return [
        (rng.standard_normal(t.shape) * scale).astype(np.dtype(t.dtype)) for t in schema.tensors
    ]


def claim_round(provider: Provider, amqp_url: str) -> list[ClaimGrant]:
    """Claim every published task, in slot (= shard here) order."""
    grants = [provider.claim(m.task_id) for m in drain_tasks(amqp_url)]
    return sorted(grants, key=lambda g: g.shard)
