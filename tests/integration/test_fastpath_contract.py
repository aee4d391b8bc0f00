"""The providers' fast path (``daig_api.fastpath``) answers in the contract's exact shapes.

It answers claims and heartbeats before FastAPI, so FastAPI's response validation never sees
them. Here it is called as the server calls it, with a downstream app that fails the test if
a request falls through, and its JSON must validate as ``ClaimGrant`` and ``Lease`` with no
field missing and none unknown: the fast path cannot drift from the contract unnoticed.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
from pydantic import BaseModel

from daig.contract.http import ClaimGrant, Lease
from daig.hyperparams import Hyperparameters
from daig_api.fastpath import ProviderFastPath
from daig_api.metrics_asgi import Message
from tests.helpers.projects import Started
from tests.helpers.queues import drain_tasks
from tests.helpers.services import ApiServer

M = TypeVar("M", bound=BaseModel)


def _fast_post(api_server: ApiServer, path: str, token: str, body: bytes) -> tuple[int, bytes]:
    """POST ``path`` to the fast path in front of the running API; (status, body)."""

    async def fell_through(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError(f"{path} was not answered by the fast path")

    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        "headers": [
            (b"authorization", f"Bearer {token}".encode()),
            (b"content-type", b"application/json"),
        ],
        "app": api_server.server.config.app,  # its state: database, blob store, settings
    }
    asyncio.run(ProviderFastPath(fell_through)(scope, receive, send))
    start, response = sent
    return start["status"], response["body"]


def exactly(model: type[M], body: bytes) -> M:
    """``body`` as ``model``, refusing unknown fields (nested too) and absent ones."""
    parsed = model.model_validate_json(body, strict=True, extra="forbid")
    _every_field_sent(parsed)
    return parsed


def _every_field_sent(model: BaseModel) -> None:
    missing = set(type(model).model_fields) - model.model_fields_set
    assert not missing, f"{type(model).__name__} without {sorted(missing)}"
    for value in dict(model).values():
        if isinstance(value, BaseModel):
            _every_field_sent(value)


def test_fast_claim_and_heartbeat_answer_exactly_the_contract(
    start_project: Callable[..., Started], api_server: ApiServer, make_user, amqp_url: str
) -> None:
    started = start_project(Hyperparameters(total_tasks=3, task_size=3))
    task = drain_tasks(amqp_url)[0]
    volunteer = make_user(api_server.url, "provider")
    assert volunteer.token is not None

    status, body = _fast_post(
        api_server, f"/v1/tasks/{task.task_id}/claim", volunteer.token, b'{"agent_id": "a-1"}'
    )
    assert status == 200, body
    grant = exactly(ClaimGrant, body)
    assert (grant.task_id, grant.project_id, grant.shard) == (task.task_id, started.id, task.shard)
    assert grant.weights_inline is not None, "the digits MLP's weights travel inline"

    status, body = _fast_post(
        api_server, f"/v1/claims/{grant.claim_id}/heartbeat", volunteer.token, b""
    )
    assert status == 200, body
    lease = exactly(Lease, body)
    assert lease.claim_id == grant.claim_id and lease.lease_seconds > 0


def test_exactly_refuses_unknown_and_missing_fields() -> None:
    lease = Lease(claim_id=uuid.UUID(int=1), lease_seconds=30.0)
    body = lease.model_dump_json().encode()
    assert exactly(Lease, body) == lease
    for broken in (body.replace(b"}", b', "spare": 1}'), b'{"lease_seconds": 30.0}'):
        with pytest.raises((ValueError, AssertionError)):  # ValidationError is a ValueError
            exactly(Lease, broken)
