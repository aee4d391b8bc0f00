"""Posting to the double-entry credit ledger, and reading balances back.

Every movement is one ``CreditTransfer`` with entries that sum to zero; balances are never
stored, only summed from entries. Posting is idempotent: a transfer is keyed by
``(kind, reference)`` and inserted with ``ON CONFLICT DO NOTHING``, so a retried grant or a
result handled again (redelivery, aggregator restart) posts nothing the second time. These
functions never commit: the caller's transaction (e.g. the one accepting a result) owns them.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import case, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from daig.credits.pricing import task_cost
from daig.db.models import CreditEntry, CreditTransfer, Project
from daig.weights.schema import WeightSchema

log = logging.getLogger(__name__)

GRANTS = "system:grants"  # the source of sign-up grants
GRANT = "grant"
WORK = "work"
REVERSAL = "reversal"  # a work payment taken back: its result was outvoted by its replicas


def user_account(user_id: int) -> str:
    return f"user:{user_id}"


@dataclass(frozen=True)
class Leg:
    """One entry of a transfer to be posted: ``amount`` > 0 credits the account."""

    account: str
    amount: int
    user_id: int | None = None


def post(
    session: Session,
    *,
    kind: str,
    reference: str,
    legs: Sequence[Leg],
    project_id: uuid.UUID | None = None,
    task_id: uuid.UUID | None = None,
    result_id: uuid.UUID | None = None,
    memo: str = "",
) -> int | None:
    """Record one transfer; its id, or None if ``(kind, reference)`` was already posted."""
    if len(legs) < 2 or sum(leg.amount for leg in legs) != 0:
        raise ValueError(f"a transfer needs two or more entries summing to zero, not {legs}")
    transfer_id = session.scalar(
        insert(CreditTransfer)
        .values(
            kind=kind,
            reference=reference,
            project_id=project_id,
            task_id=task_id,
            result_id=result_id,
            memo=memo[:255],
        )
        .on_conflict_do_nothing(constraint="uq_credit_transfers_kind_ref")
        .returning(CreditTransfer.id)
    )
    if transfer_id is None:
        return None
    session.add_all(
        CreditEntry(
            transfer_id=transfer_id, account=leg.account, user_id=leg.user_id, amount=leg.amount
        )
        for leg in legs
    )
    session.flush()
    return int(transfer_id)


def ensure_grant(session: Session, user_id: int, amount: int) -> bool:
    """Give a new account its sign-up grant once (later calls do nothing); True if given now."""
    if amount <= 0:
        return False
    posted = post(
        session,
        kind=GRANT,
        reference=str(user_id),
        legs=[Leg(GRANTS, -amount), Leg(user_account(user_id), amount, user_id)],
        memo="sign-up grant",
    )
    return posted is not None


def parameters_of(project: Project) -> int:
    assert project.weight_schema is not None, "a started project has a weight schema"
    return WeightSchema.from_json(project.weight_schema).parameters


@dataclass(frozen=True)
class Payment:
    """An accepted result to pay for: the task's worth, from the project's owner to its
    provider."""

    project: Project
    task_id: uuid.UUID
    round_index: int
    shard: int
    result_id: uuid.UUID
    provider_id: int
    samples: int


def pay_for_results(session: Session, payments: Sequence[Payment]) -> int:
    """Move each accepted result's worth from its project's owner to its provider, in the
    caller's transaction (two statements for the lot); the credits moved.

    Keyed by task: a task is paid at most once, whichever of its results was accepted, so a
    result handled again (redelivery, aggregator restart) posts nothing the second time."""
    due: dict[str, tuple[Payment, int]] = {}
    for payment in payments:
        project = payment.project
        amount = task_cost(
            samples=payment.samples, epochs=project.epochs, parameters=parameters_of(project)
        )
        if amount:
            due[str(payment.task_id)] = (payment, amount)
    if not due:
        return 0
    posted = session.execute(
        insert(CreditTransfer)
        .values(
            [
                {
                    "kind": WORK,
                    "reference": reference,
                    "project_id": p.project.id,
                    "task_id": p.task_id,
                    "result_id": p.result_id,
                    "memo": f"round {p.round_index} shard {p.shard}: {p.samples} samples",
                }
                for reference, (p, _) in due.items()
            ]
        )
        .on_conflict_do_nothing(constraint="uq_credit_transfers_kind_ref")
        .returning(CreditTransfer.id, CreditTransfer.reference)
    ).all()
    entries = []
    for transfer_id, reference in posted:
        payment, amount = due[reference]
        owner, provider = payment.project.owner_id, payment.provider_id
        entries += [
            {
                "transfer_id": transfer_id,
                "account": user_account(owner),
                "user_id": owner,
                "amount": -amount,
            },
            {
                "transfer_id": transfer_id,
                "account": user_account(provider),
                "user_id": provider,
                "amount": amount,
            },
        ]
    if entries:
        session.execute(insert(CreditEntry), entries)
    for reference in set(due) - {reference for _, reference in posted}:
        log.warning("task %s: already paid; not paying again", reference)
    return sum(due[reference][1] for _, reference in posted)


def reverse_payments(session: Session, task_ids: Sequence[uuid.UUID], why: str) -> int:
    """Take back each task's work payment with a reversal transfer (the ledger stays
    append-only): the provider's credit goes back to the project's owner. Keyed by task, so
    a task is reversed at most once; the credits moved back."""
    moved = 0
    for task_id in task_ids:
        paid = session.execute(
            select(
                CreditTransfer.id,
                CreditTransfer.project_id,
                CreditTransfer.result_id,
                CreditTransfer.memo,
            ).where(CreditTransfer.kind == WORK, CreditTransfer.reference == str(task_id))
        ).first()
        if paid is None:
            continue
        entries = session.execute(
            select(CreditEntry.account, CreditEntry.user_id, CreditEntry.amount).where(
                CreditEntry.transfer_id == paid.id
            )
        ).all()
        posted = post(
            session,
            kind=REVERSAL,
            reference=str(task_id),
            legs=[Leg(account, -amount, user_id) for account, user_id, amount in entries],
            project_id=paid.project_id,
            task_id=task_id,
            result_id=paid.result_id,
            memo=f"reversed ({why}): {paid.memo}",
        )
        if posted is not None:
            moved += sum(amount for _, _, amount in entries if amount > 0)
    return moved


@dataclass(frozen=True)
class Balance:
    """An account's balance and where it came from (all derived from entries)."""

    balance: int
    granted: int
    earned: int
    spent: int


def balance_of(session: Session, user_id: int) -> Balance:
    account = user_account(user_id)
    is_work = CreditTransfer.kind == WORK
    is_reversal = CreditTransfer.kind == REVERSAL
    amount = CreditEntry.amount
    # A reversal takes back what the work transfer moved: less earned for the provider, less
    # spent for the owner.
    row = session.execute(
        select(
            func.coalesce(func.sum(amount), 0),
            func.coalesce(func.sum(case((CreditTransfer.kind == GRANT, amount))), 0),
            func.coalesce(
                func.sum(
                    case(
                        ((amount > 0) & is_work, amount),
                        ((amount < 0) & is_reversal, amount),
                    )
                ),
                0,
            ),
            func.coalesce(
                func.sum(
                    case(
                        ((amount < 0) & is_work, -amount),
                        ((amount > 0) & is_reversal, -amount),
                    )
                ),
                0,
            ),
        )
        .join(CreditTransfer, CreditTransfer.id == CreditEntry.transfer_id)
        .where(CreditEntry.account == account)
    ).one()
    return Balance(*(int(value) for value in row))
