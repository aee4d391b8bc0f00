"""Broker messages: encoding, and ``decode`` refusing anything it cannot trust."""

from __future__ import annotations

import json
import math
import uuid

import pytest
from pydantic import ValidationError

from daig.contract.messages import (
    SCHEMA_VERSION,
    EventKind,
    MessageRejected,
    ProjectEvent,
    TrainingStatus,
    TrainResult,
    TrainTask,
    decode,
)


def task() -> TrainTask:
    return TrainTask(project_id=uuid.uuid4(), round=3, task_id=uuid.uuid4(), shard=7, attempt=1)


def result(**changes: object) -> TrainResult:
    fields: dict[str, object] = {
        "project_id": uuid.uuid4(),
        "round": 0,
        "task_id": uuid.uuid4(),
        "claim_id": uuid.uuid4(),
        "provider_id": 12,
        "status": TrainingStatus.TRAINED,
        "blob_key": "projects/p/rounds/0/t.daig",
        "sha256": "ab" * 32,
        "schema_hash": "cd" * 32,
        "samples": 119,
        "fit_seconds": 1.5,
        "history": {"loss": [2.0, 1.0]},
    }
    fields.update(changes)
    return TrainResult(**fields)


def body_with(message, **changes: object) -> bytes:
    data = json.loads(message.model_dump_json())
    data.update(changes)
    return json.dumps(data).encode()


@pytest.mark.parametrize("make", [task, result])
def test_round_trip(make) -> None:
    message = make()
    body = message.model_dump_json().encode()
    assert decode(type(message), body, type(message).type_name) == message


def test_event_round_trip() -> None:
    event = ProjectEvent(
        project_id=uuid.uuid4(), round=2, kind=EventKind.ROUND_CLOSED, detail={"accepted": 4}
    )
    assert decode(ProjectEvent, event.model_dump_json().encode()) == event


def test_envelope_defaults() -> None:
    first, second = task(), task()
    assert first.schema_version == SCHEMA_VERSION == 1
    assert first.message_id != second.message_id
    assert first.sent_at.tzinfo is not None


def test_messages_are_frozen() -> None:
    message = task()
    with pytest.raises(ValidationError):
        message.shard = 8


def test_extra_field_is_refused() -> None:
    with pytest.raises(MessageRejected, match="surprise"):
        decode(TrainTask, body_with(task(), surprise=1))


def test_wrong_type_header_is_refused() -> None:
    body = task().model_dump_json().encode()
    with pytest.raises(MessageRejected, match="expected a daig.TrainTask message"):
        decode(TrainTask, body, "daig.TrainResult")


def test_body_of_another_message_type_is_refused() -> None:
    with pytest.raises(MessageRejected, match="invalid daig.TrainTask"):
        decode(TrainTask, result().model_dump_json().encode())


@pytest.mark.parametrize("version", [0, 2, "1", None])
def test_unknown_schema_version_is_refused(version: object) -> None:
    with pytest.raises(MessageRejected, match="schema_version"):
        decode(TrainTask, body_with(task(), schema_version=version))


@pytest.mark.parametrize(
    "body", [b"", b"{", b"not json at all", b"[1, 2]", b"\xff\xfe\x00", b"null"]
)
def test_bad_json_is_refused(body: bytes) -> None:
    with pytest.raises(MessageRejected):
        decode(TrainTask, body)


@pytest.mark.parametrize(
    "changes",
    [
        {"round": -1},
        {"shard": -1},
        {"attempt": 0},
        {"project_id": "not-a-uuid"},
    ],
)
def test_out_of_range_task_fields_are_refused(changes: dict) -> None:
    with pytest.raises(MessageRejected):
        decode(TrainTask, body_with(task(), **changes))


@pytest.mark.parametrize(
    "changes",
    [
        {"sha256": "ABC"},
        {"samples": -1},
        {"fit_seconds": -0.5},
        {"status": "exploded"},
        {"error": "x" * 4001},
        {"history": {"loss": ["high"]}},
    ],
)
def test_invalid_result_fields_are_refused(changes: dict) -> None:
    with pytest.raises(MessageRejected):
        decode(TrainResult, body_with(result(), **changes))


def test_missing_required_field_is_refused() -> None:
    data = json.loads(task().model_dump_json())
    del data["task_id"]
    with pytest.raises(MessageRejected, match="task_id"):
        decode(TrainTask, json.dumps(data).encode())


def test_non_finite_history_values_survive_the_broker_as_null() -> None:
    """A diverged fit's NaN/inf must not make the result undecodable (and dead-lettered)."""
    message = result(history={"loss": [1.0, math.nan], "val_loss": [math.inf, -math.inf]})
    decoded = decode(TrainResult, message.model_dump_json().encode())
    assert decoded.history == {"loss": [1.0, None], "val_loss": [None, None]}
    body = message.model_dump_json()
    assert "NaN" not in body and "Infinity" not in body  # strict JSON, storable in JSONB
