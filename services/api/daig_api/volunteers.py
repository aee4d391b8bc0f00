"""Volunteers online now, their measured speed, and a project's time estimate before Start.

"Online" is defined once, in ``daig.presence``; the arithmetic of the estimate lives in
``daig.estimates``. Functions take ``session`` and never commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, func, select, union
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from daig import estimates
from daig.contract.http import TimeEstimateOut, VolunteersOut
from daig.credits.ledger import WORK
from daig.db.models import (
    Claim,
    ClaimState,
    CreditEntry,
    CreditTransfer,
    Project,
    ProviderPresence,
    ProviderTrust,
    Result,
    ResultStatus,
)
from daig.planning import total_rounds
from daig.presence import ONLINE_SECONDS

MEASURE_SECONDS = 3600.0  # throughput is measured on the last hour's paid results
PAID = (ResultStatus.ACCEPTED, ResultStatus.HELD, ResultStatus.AGREED)


@dataclass(frozen=True)
class Online:
    volunteers: int
    agents: int


def record_presence(*, session: Session, user_id: int, agent_id: str, now: datetime) -> None:
    """The agent ``agent_id`` of ``user_id`` is waiting for tasks now."""
    statement = insert(ProviderPresence).values(provider_id=user_id, agent_id=agent_id, seen_at=now)
    session.execute(
        statement.on_conflict_do_update(
            index_elements=[ProviderPresence.provider_id, ProviderPresence.agent_id],
            set_={"seen_at": statement.excluded.seen_at},
        )
    )


def online(*, session: Session, now: datetime) -> Online:
    """Accounts and agents online now (``daig.presence``), quarantined accounts left out."""
    since = now - timedelta(seconds=ONLINE_SECONDS)
    agents = union(
        select(ProviderPresence.provider_id, ProviderPresence.agent_id).where(
            ProviderPresence.seen_at >= since
        ),
        select(Claim.provider_id, Claim.agent_id).where(
            Claim.state == ClaimState.ACTIVE, Claim.lease_expires_at >= since
        ),
    ).subquery()
    quarantined = select(ProviderTrust.provider_id).where(
        ProviderTrust.quarantined_at.is_not(None), ProviderTrust.lifted_at.is_(None)
    )
    row = session.execute(
        select(
            func.count(func.distinct(agents.c.provider_id)),
            func.count(),
        ).where(agents.c.provider_id.not_in(quarantined))
    ).one()
    return Online(volunteers=int(row[0]), agents=int(row[1]))


def volunteers_out(*, session: Session, now: datetime) -> VolunteersOut:
    count = online(session=session, now=now)
    return VolunteersOut(
        online=count.volunteers, agents=count.agents, window_seconds=ONLINE_SECONDS
    )


def throughput(*, session: Session, now: datetime) -> estimates.Throughput:
    """Credits' worth of work per agent per second on the last hour's paid results (from
    claim to result: downloads and set-up included), or the assumed rate if none."""
    since = now - timedelta(seconds=MEASURE_SECONDS)
    work, seconds = session.execute(
        select(
            func.coalesce(func.sum(CreditEntry.amount), 0),
            func.coalesce(
                func.sum(func.extract("epoch", Result.received_at - Claim.claimed_at)), 0
            ),
        )
        .select_from(Result)
        .join(Claim, Claim.id == Result.claim_id)
        .join(
            CreditTransfer,
            and_(CreditTransfer.kind == WORK, CreditTransfer.task_id == Result.task_id),
        )
        .join(
            CreditEntry,
            and_(CreditEntry.transfer_id == CreditTransfer.id, CreditEntry.amount > 0),
        )
        .where(Result.received_at >= since, Result.status.in_(PAID))
    ).one()
    if float(seconds) > 0 and int(work) > 0:
        return estimates.Throughput(rate=int(work) / float(seconds), measured=True)
    return estimates.Throughput(rate=estimates.ASSUMED_RATE, measured=False)


def time_estimate(
    *, session: Session, project: Project, base: int | None, replicas: int, now: datetime
) -> TimeEstimateOut:
    """How long ``project`` would train with the volunteers online now (``base``: its
    work in ledger units with every planned task paid once; ``replicas``: what replicas
    add)."""
    count = online(session=session, now=now)
    speed = throughput(session=session, now=now)
    seconds = None
    if base is not None:
        work = estimates.Workload(
            work=base,
            rounds=project.total_rounds
            or total_rounds(project.total_tasks, project.task_size, project.passes),
            task_size=project.task_size,
            max_contributors=project.max_contributors,
            replica_share=replicas / base if base else 0.0,
        )
        seconds = estimates.training_seconds(work, count.agents, speed)
    return TimeEstimateOut(
        volunteers_online=count.volunteers,
        agents_online=count.agents,
        seconds=seconds,
        units_per_second=speed.rate,
        measured=speed.measured,
        summary=estimates.summary(seconds, count.volunteers, count.agents, speed),
    )
