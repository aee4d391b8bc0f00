"""The provider's side of the API: broker settings, claim, lease heartbeat, release."""

from __future__ import annotations

import logging
import uuid

from fastapi import APIRouter

from daig import metrics
from daig.db.models import Project
from daig.logs import log_context
from daig.messages import EventKind, ProjectEvent
from daig.topology import EVENTS, RESULTS_EXCHANGE, TASKS
from services.api import claims, crud
from services.api.api.deps import (
    BlobsDep,
    ClaimContextDep,
    CurrentUser,
    PublisherDep,
    SessionDep,
    SettingsDep,
)
from services.api.broker_accounts import BrokerAccountsUnavailable, ensure_provider_account
from services.api.errors import ApiError
from services.api.grants import build_grant
from services.api.schemas import ClaimGrant, ClaimRequest, Lease, ProviderConfig

router = APIRouter(prefix="/v1", tags=["providers"])
log = logging.getLogger(__name__)


@router.get("/provider/config")
def provider_config(user: CurrentUser, settings: SettingsDep) -> ProviderConfig:
    """Where a provider agent receives tasks and sends results, with its own broker account."""
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


@router.post("/tasks/{task_id}/claim")
def claim_task(
    task_id: uuid.UUID,
    body: ClaimRequest,
    user: CurrentUser,
    session: SessionDep,
    blobs: BlobsDep,
    settings: SettingsDep,
    context: ClaimContextDep,
) -> ClaimGrant:
    """Claim a task announced on the task queue; 409 says why it is not yours."""
    with metrics.CLAIM_SECONDS.time(), log_context(task=task_id):
        try:
            decision = claims.claim(
                session=session,
                catalog=context.catalog,
                policy=context.policy,
                settings=settings,
                user=user,
                task_id=task_id,
                agent_id=body.agent_id,
            )
            session.commit()
        except ApiError as exc:
            session.rollback()
            metrics.CLAIMS_REFUSED.labels(exc.reason).inc()
            raise
        if decision.queued:
            context.relay.wake()
        grant = build_grant(
            blobs=blobs,
            settings=settings,
            facts=decision.facts,
            task=decision.task,
            inline=context.inline_weights,
        )
    metrics.TASKS_CLAIMED.inc()
    if decision.published_at is not None:
        waited = (crud.now() - decision.published_at).total_seconds()
        metrics.CLAIM_WAIT_SECONDS.observe(max(0.0, waited))
    with log_context(project=grant.project_id, round=grant.round, task=task_id):
        log.info(
            "project %s round %s task %s: claimed by user %s (%s)",
            grant.project_id,
            grant.round,
            task_id,
            user.id,
            body.agent_id,
        )
    return grant


@router.post("/claims/{claim_id}/heartbeat")
def heartbeat(
    claim_id: uuid.UUID, user: CurrentUser, session: SessionDep, settings: SettingsDep
) -> Lease:
    """Renew the lease of a running task; 409 means: stop, the task is no longer yours."""
    seconds = claims.heartbeat(session=session, settings=settings, user=user, claim_id=claim_id)
    session.commit()
    return Lease(claim_id=claim_id, lease_seconds=seconds)


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
