"""Every message that crosses the broker, as frozen pydantic models with a common envelope.

Encode with ``model_dump_json()``; decode only at the consumer boundary with ``decode()``,
which refuses unknown fields, a wrong ``type`` and a ``schema_version`` this code cannot read.
Large bytes never travel here: a result names its delta's blob key and sha256.
"""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

SCHEMA_VERSION = 1
MAX_INLINE_BYTES = 1024 * 1024  # the most a delta may weigh to travel inside a message
MAX_INLINE_BASE64 = 4 * (MAX_INLINE_BYTES // 3 + 1)


def _now() -> datetime:
    return datetime.now(UTC)


class Message(BaseModel):
    """Envelope fields every message carries."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    type_name: ClassVar[str]

    message_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    schema_version: Literal[1] = 1
    project_id: uuid.UUID
    round: int = Field(ge=0)
    sent_at: datetime = Field(default_factory=_now)


class TrainTask(Message):
    """Scheduler -> providers: train one shard of one round."""

    type_name: ClassVar[str] = "daig.TrainTask"
    task_id: uuid.UUID
    shard: int = Field(ge=0)
    attempt: int = Field(ge=1)


class TrainingStatus(StrEnum):
    """What a provider reports of its training (``TrainResult.status``); the aggregator's
    verdict on the result is another thing, ``daig.db.models.ResultStatus``."""

    TRAINED = "trained"
    FAILED = "failed"


class TrainResult(Message):
    """Provider -> aggregator: the delta of one task, or why training failed."""

    type_name: ClassVar[str] = "daig.TrainResult"
    task_id: uuid.UUID
    claim_id: uuid.UUID
    provider_id: int
    status: TrainingStatus
    blob_key: str | None = None
    sha256: Annotated[str, Field(pattern="^[0-9a-f]{64}$")] | None = None
    schema_hash: str | None = None
    samples: int = Field(default=0, ge=0)
    fit_seconds: float = Field(default=0.0, ge=0)
    history: dict[str, list[float | None]] = Field(default_factory=dict)
    error: Annotated[str, Field(max_length=4000)] | None = None
    # True when training stopped at the volunteer's own limits (memory), not the model's fault.
    resource_limit: bool = False
    # A small delta travels in the message itself (base64 of its weight stream) instead of
    # through the blob store; the aggregator still stores it under ``blob_key``.
    inline_delta: Annotated[str, Field(max_length=MAX_INLINE_BASE64)] | None = None
    # Seconds the provider spent per phase (claim, download, fit, encode, upload), for tuning.
    timings: dict[str, float] = Field(default_factory=dict)

    @field_validator("history")
    @classmethod
    def _finite_history(
        cls, history: dict[str, list[float | None]]
    ) -> dict[str, list[float | None]]:
        # A diverged fit reports NaN/inf; JSON (and Postgres JSONB) cannot carry them, and pydantic
        # would write null that the float field then refuses. Keep them as null from the start.
        return {
            name: [v if v is not None and math.isfinite(v) else None for v in values]
            for name, values in history.items()
        }


class EventKind(StrEnum):
    PROJECT_STARTED = "project.started"
    PROJECT_CHANGED = "project.changed"
    ROUND_CLOSED = "round.closed"
    TASK_RELEASED = "task.released"
    TASK_FINISHED = "task.finished"


class ProjectEvent(Message):
    """API/aggregator -> scheduler: something changed; reconcile this project now."""

    type_name: ClassVar[str] = "daig.ProjectEvent"
    kind: EventKind
    detail: dict[str, Any] = Field(default_factory=dict)


M = TypeVar("M", bound=Message)


class MessageRejected(ValueError):
    """A message body that cannot be decoded; it belongs in the dead-letter queue."""


def decode(cls: type[M], body: bytes, type_header: str | None = None) -> M:
    """Decode a message body of the expected class or raise ``MessageRejected``."""
    if type_header is not None and type_header != cls.type_name:
        raise MessageRejected(f"expected a {cls.type_name} message, got type {type_header!r}")
    try:
        return cls.model_validate_json(body)
    except ValueError as exc:
        raise MessageRejected(f"invalid {cls.type_name}: {exc}") from exc
