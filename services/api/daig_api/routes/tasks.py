"""The provider's side of the API: broker settings, presence, claim, lease heartbeat, release."""

from __future__ import annotations

import logging
import uuid

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from daig import standing
from daig.contract.http import (
    ClaimGrant,
    ClaimRequest,
    Lease,
    PresenceRequest,
    ProviderConfig,
    VolunteersOut,
)
from daig.contract.messages import EventKind, ProjectEvent
from daig.db.models import Project
from daig.topology import EVENTS, RESULTS_EXCHANGE, TASKS
from daig_api import claims, crud, provider_calls, volunteers
from daig_api.broker_accounts import BrokerAccountsUnavailable, ensure_provider_account
from daig_api.deps import (
    CurrentUser,
    PublisherDep,
    SessionDep,
    SettingsDep,
    TokenUserId,
)
from daig_api.errors import ApiError

router = APIRouter(prefix="/v1", tags=["providers"])
log = logging.getLogger(__name__)


@router.get("/provider/config")
def provider_config(
    user: CurrentUser, session: SessionDep, settings: SettingsDep
) -> ProviderConfig:
    """Where a provider agent receives tasks and sends results, with its own broker account."""
    if standing.is_quarantined(session, user.id):
        # Its broker user was deleted (or is never made) until an operator lifts it.
        raise ApiError(
            403,
            "your account is quarantined, so it gets no broker account and no work; "
            "`daig standing` says why. If you think it wrong, ask the operator to review it "
            "(`daig quarantine show`) and lift it",
            "quarantined",
        )
    try:
        account = ensure_provider_account(settings, user.id)
    except BrokerAccountsUnavailable as exc:
        log.error("user %s: cannot issue broker credentials: %s", user.id, exc)
        error = ApiError(
            503,
            "the server cannot issue broker credentials right now: RabbitMQ's management API "
            "is not available to the API (the operator's logs say why); retry later",
            reason="broker_accounts_unavailable",
        )
        error.headers = {"Retry-After": "30"}
        raise error from exc
    return ProviderConfig(
        amqp_url=account.amqp_url,
        broker_user=account.username,
        tasks_queue=TASKS.queue,
        results_exchange=RESULTS_EXCHANGE,
        results_routing_key="",  # each grant names its own (results are partitioned)
        lease_seconds=settings.lease_seconds,
        user_id=user.id,
    )


@router.post("/provider/presence", status_code=204)
def presence(body: PresenceRequest, user: CurrentUser, session: SessionDep) -> None:
    """An idle agent says it is waiting for tasks (every 30 s): it counts as online."""
    volunteers.record_presence(
        session=session, user_id=user.id, agent_id=body.agent_id, now=crud.now()
    )
    session.commit()


@router.get("/volunteers")
def volunteers_online(user: CurrentUser, session: SessionDep) -> VolunteersOut:
    """Volunteers online now: an agent seen waiting or training in the last two minutes."""
    return volunteers.volunteers_out(session=session, now=crud.now())


# The two routes every provider calls for every task are kept lean (``provider_calls``), and
# served without the framework's routing and dependencies by ``fastpath`` when well formed.


@router.post("/tasks/{task_id}/claim", response_model=ClaimGrant)
async def claim_task(
    task_id: uuid.UUID, body: ClaimRequest, user_id: TokenUserId, request: Request
) -> Response:
    """Claim a task announced on the task queue; 409 says why it is not yours."""
    grant = await run_in_threadpool(
        provider_calls.claim, request.app.state, user_id, task_id, body.agent_id
    )
    return Response(grant, media_type="application/json")


@router.post("/claims/{claim_id}/heartbeat", response_model=Lease)
async def heartbeat(claim_id: uuid.UUID, user_id: TokenUserId, request: Request) -> Response:
    """Renew the lease of a running task; 409 means: stop, the task is no longer yours."""
    lease = await run_in_threadpool(provider_calls.heartbeat, request.app.state, user_id, claim_id)
    return Response(lease, media_type="application/json")


@router.post("/claims/{claim_id}/release", status_code=204)
def release(
    claim_id: uuid.UUID, user: CurrentUser, session: SessionDep, publisher: PublisherDep
) -> None:
    """Give a task back at once (e.g. the volunteer pressed Stop)."""
    row = claims.release(session=session, user=user, claim_id=claim_id)
    session.commit()
    project = session.get(Project, row.project_id)
    assert project is not None
    try:
        publisher.publish(
            EVENTS,
            ProjectEvent(
                project_id=project.id,
                round=project.current_round,
                kind=EventKind.TASK_RELEASED,
                detail={"task_id": str(row.task_id)},
            ),
        )
    except Exception:
        log.warning(
            "project %s: could not publish task release; the scheduler will poll", project.id
        )
