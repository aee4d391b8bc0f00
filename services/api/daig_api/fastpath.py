"""Claims and lease heartbeats served without the web framework's routing and dependencies.

Every task costs a claim, and at hundreds of tasks a second FastAPI's per-request machinery
(middleware, routing, dependency solving, response validation) cost more CPU than the claim
itself. This ASGI app sits in front of FastAPI's middleware (``main.DaigApi``) and answers a
well-formed ``POST /v1/tasks/{id}/claim`` or ``POST /v1/claims/{id}/heartbeat`` directly,
with the same functions the routes call (``provider_calls``) and the same error bodies.
Anything else -- a missing or invalid token, a body that does not parse -- goes on to FastAPI
with its body replayed, so every unusual request is answered exactly as the documented routes
answer it.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError
from sqlalchemy.exc import OperationalError
from starlette.concurrency import run_in_threadpool

from daig import metrics
from daig.contract.http import ClaimRequest
from daig_api import provider_calls
from daig_api.errors import ApiError
from daig_api.metrics_asgi import ASGIApp, Message, Receive, Scope, Send
from daig_api.security import user_id_from_token

log = logging.getLogger(__name__)
_UUID = "([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})"
CLAIM = re.compile(rf"^/v1/tasks/{_UUID}/claim$")
HEARTBEAT = re.compile(rf"^/v1/claims/{_UUID}/heartbeat$")
MAX_BODY = 4096


class ProviderFastPath:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        claim, heartbeat = CLAIM.match(path), HEARTBEAT.match(path)
        if claim is None and heartbeat is None:
            await self.app(scope, receive, send)
            return
        body, more = await _read_body(receive)
        state = scope["app"].state
        user_id = _user_id(scope, state.settings.secret_key)
        call = None
        if user_id is not None and not more and claim is not None:
            call = _claim_call(state, user_id, uuid.UUID(claim.group(1)), body)
        elif user_id is not None and not more and heartbeat is not None:
            call = _heartbeat_call(state, user_id, uuid.UUID(heartbeat.group(1)), body)
        if call is None:  # let the framework answer it, whatever is wrong with it
            await self.app(scope, _replay(body, more, receive), send)
            return
        status, payload, headers = await _answer(call)
        group = metrics.route_group(path)  # counted as the metering middleware would
        metrics.UPLOAD_BYTES.labels(group).inc(len(body))
        metrics.DOWNLOAD_BYTES.labels(group).inc(len(payload))
        await _send_json(send, status, payload, headers)


async def _read_body(receive: Receive) -> tuple[bytes, bool]:
    """The request body, up to ``MAX_BODY`` bytes; True if there is more (not read)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), False
        if size > MAX_BODY:
            return b"".join(chunks), True


def _replay(body: bytes, more: bool, receive: Receive) -> Receive:
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": more}

    return replayed


def _user_id(scope: Scope, secret: str) -> int | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token:
                return user_id_from_token(token, secret)
    return None


def _claim_call(
    state: Any, user_id: int, task_id: uuid.UUID, body: bytes
) -> Callable[[], bytes] | None:
    try:
        request = ClaimRequest.model_validate_json(body)
    except ValidationError:
        return None
    return lambda: provider_calls.claim(state, user_id, task_id, request.agent_id)


def _heartbeat_call(
    state: Any, user_id: int, claim_id: uuid.UUID, body: bytes
) -> Callable[[], bytes] | None:
    if body.strip() not in (b"", b"{}"):  # the route takes no body; let it say so
        return None
    return lambda: provider_calls.heartbeat(state, user_id, claim_id)


async def _answer(call: Callable[[], bytes]) -> tuple[int, bytes, dict[str, str]]:
    """Run ``call`` in a worker thread; its JSON, or the error the API's handlers would give."""
    try:
        return 200, await run_in_threadpool(call), {}
    except ApiError as exc:
        return exc.status_code, _error(exc.detail, exc.reason), dict(exc.headers or {})
    except OperationalError:
        detail = "the database is unavailable right now; retry in a moment"
        return 503, _error(detail, "unavailable"), {"Retry-After": "5"}
    except Exception:
        log.exception("unhandled error")
        detail = "internal server error; the operator's logs have the details"
        return 500, _error(detail, "internal"), {}


def _error(detail: str, reason: str) -> bytes:
    return json.dumps({"detail": detail, "reason": reason}).encode()


async def _send_json(send: Send, status: int, body: bytes, headers: dict[str, str]) -> None:
    raw = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *((name.lower().encode(), value.encode()) for name, value in headers.items()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
