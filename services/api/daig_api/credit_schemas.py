"""Response bodies of the credit routes: balances, history, project cost, leaderboards.

Amounts are whole credits (1 credit = 1 sample x epoch x model parameter of accepted work).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel


class BalanceOut(BaseModel):
    """Your account: ``balance`` = ``granted`` + ``earned`` - ``spent``."""

    balance: int
    granted: int
    earned: int
    spent: int
    committed: int  # still to be spent by your unfinished projects (their estimates)
    available: int  # balance - committed: what a new project may cost


class HistoryLineOut(BaseModel):
    """One entry of your account, with the balance just after it."""

    entry_id: int
    at: datetime
    kind: str  # grant | work
    amount: int  # > 0 credited to you, < 0 debited
    balance_after: int
    project_id: uuid.UUID | None
    task_id: uuid.UUID | None
    memo: str


class ProjectCostOut(BaseModel):
    """What a project has cost so far and is expected to cost in all."""

    project_id: uuid.UUID
    state: str
    estimate: int | None  # None until the model and data are uploaded
    spent: int
    paid_tasks: int
    remaining: int | None


class ContributorOut(BaseModel):
    """A provider's credits earned for accepted work, and how many tasks that was."""

    rank: int
    user_id: int
    username: str
    credits: int
    tasks: int
