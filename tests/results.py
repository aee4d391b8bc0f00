"""Result messages as a provider would send them, for tests that play the provider."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import httpx
import numpy as np

from daig.messages import TrainingStatus, TrainResult
from daig.weights.stream import encode_weights


def trained_result(
    grant: dict[str, Any],
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
        response = httpx.put(grant["result_url"], content=body)
        assert response.status_code in upload_statuses, response.text
    values: dict[str, Any] = {
        "project_id": grant["project_id"],
        "round": grant["round"],
        "task_id": grant["task_id"],
        "claim_id": grant["claim_id"],
        "provider_id": provider_id,
        "status": TrainingStatus.TRAINED,
        "blob_key": grant["result_key"],
        "sha256": hashlib.sha256(body).hexdigest(),
        "schema_hash": grant["schema_hash"],
    }
    return TrainResult(**(values | fields))
