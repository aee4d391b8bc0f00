"""A volunteer's own recent results: what became of each task it trained, and what it earned.

Results travel over the broker, so the provider agent never hears whether the aggregator
accepted them; the GUI polls this route for its task list and event log.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import and_, func, or_, select

from daig.contract.http import ProviderResultOut
from daig.credits.ledger import REVERSAL, WORK, user_account
from daig.credits.units import to_credits
from daig.db.models import CreditEntry, CreditTransfer, Project, Result, Task
from daig_api.deps import CurrentUser, SessionDep

router = APIRouter(prefix="/v1", tags=["providers"])


@router.get("/provider/results")
def my_results(
    user: CurrentUser,
    session: SessionDep,
    since: Annotated[
        datetime | None,
        Query(description="Only results recorded after this time (ISO 8601, with a zone)."),
    ] = None,
    limit: int = Query(50, ge=1, le=500, description="Most recent results to return."),
) -> list[ProviderResultOut]:
    """Your results, newest first, with their project's name, status, reason and credits."""
    # The provider's side of the task's payment and of its reversal, if any. Not the sum of
    # the account's entries: an owner volunteering on its own project pays and earns the same
    # task, and those cancel out.
    provider_side = or_(
        and_(CreditTransfer.kind == WORK, CreditEntry.amount > 0),
        and_(CreditTransfer.kind == REVERSAL, CreditEntry.amount < 0),
    )
    earned = (
        select(func.coalesce(func.sum(CreditEntry.amount), 0))
        .join(CreditTransfer, CreditTransfer.id == CreditEntry.transfer_id)
        .where(
            CreditEntry.account == user_account(user.id),
            CreditTransfer.task_id == Result.task_id,
            provider_side,
        )
        .scalar_subquery()
    )
    query = (
        select(Result, Project.name, Task.shard, earned.label("credits"))
        .outerjoin(Project, Project.id == Result.project_id)
        .outerjoin(Task, Task.id == Result.task_id)
        .where(Result.provider_id == user.id)
        .order_by(Result.received_at.desc())
        .limit(limit)
    )
    if since is not None:
        query = query.where(Result.received_at > _in_utc(since))
    return [
        ProviderResultOut(
            message_id=result.message_id,
            task_id=result.task_id,
            project_id=result.project_id,
            project_name=name,
            round=result.round_index,
            shard=shard,
            status=result.status,
            reason=result.reason,
            detail=result.detail,
            received_at=result.received_at,
            fit_seconds=result.fit_seconds,
            credits=to_credits(int(credits or 0)),
        )
        for result, name, shard, credits in session.execute(query)
    ]


def _in_utc(moment: datetime) -> datetime:
    """``moment`` in UTC (naive: taken as UTC). Postgres refuses zone offsets past +-15:59,
    which ISO 8601 allows; a moment before year 1 in UTC is the earliest one."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        return (
            datetime.min.replace(tzinfo=UTC)
            if moment.year < 2
            else datetime.max.replace(tzinfo=UTC)
        )
