"""The credit ledger on real results: projects started over the real API, tasks claimed over
HTTP, deltas uploaded to presigned URLs, results handled by real ``Aggregator``s on Postgres.

Invariants checked after every scenario (``assert_ledger_consistent``): all entries sum to
zero, every transfer balances, each account's balance equals its history's last running
balance and granted + earned - spent, and each accepted task is paid exactly once, at
samples x epochs x parameters.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from daig.contract.http import ClaimGrant
from daig.credits import ledger
from daig.credits.pricing import task_cost
from daig.credits.units import to_credits as C
from daig.credits.units import to_units
from daig.db.models import Claim, CreditEntry, CreditTransfer, Result, Task
from daig.hyperparams import Hyperparameters
from daig.weights.schema import WeightSchema
from daig_api import credit_reports as reports
from tests.helpers.aggregation import DirectAggregator
from tests.helpers.projects import Started
from tests.helpers.queues import drain_tasks
from tests.helpers.results import Provider, random_delta

EPOCHS = 5  # Hyperparameters' default


def assert_ledger_consistent(sessions: sessionmaker[Session], epochs: int, parameters: int) -> None:
    with sessions() as session:
        assert session.scalar(select(func.coalesce(func.sum(CreditEntry.amount), 0))) == 0
        unbalanced = session.execute(
            select(CreditEntry.transfer_id)
            .group_by(CreditEntry.transfer_id)
            .having((func.sum(CreditEntry.amount) != 0) | (func.count() < 2))
        ).all()
        assert unbalanced == []
        users = session.scalars(
            select(CreditEntry.user_id).where(CreditEntry.user_id.is_not(None)).distinct()
        ).all()
        for user_id in users:
            totals = ledger.balance_of(session, user_id)
            lines = reports.history(session, user_id, limit=1000)
            assert lines[0].balance_after == totals.balance
            assert sum(line.amount for line in lines) == totals.balance
            assert totals.balance == totals.granted + totals.earned - totals.spent
        accepted = session.scalars(select(Result).where(Result.status == "accepted")).all()
        work = session.scalars(select(CreditTransfer).where(CreditTransfer.kind == "work")).all()
        assert sorted(str(t.task_id) for t in work) == sorted(str(r.task_id) for r in accepted)
        by_task = {r.task_id: r for r in accepted}
        for transfer in work:
            result = by_task[transfer.task_id]
            entries = session.scalars(
                select(CreditEntry).where(CreditEntry.transfer_id == transfer.id)
            ).all()
            paid = task_cost(samples=result.samples, epochs=epochs, parameters=parameters)
            assert {(e.user_id, e.amount) for e in entries if e.amount > 0} == {
                (result.provider_id, paid)
            }


def _claim_all(provider: Provider, amqp_url: str) -> list[ClaimGrant]:
    return sorted((provider.claim(m.task_id) for m in drain_tasks(amqp_url)), key=lambda g: g.shard)


def test_accepted_results_pay_once_and_rejected_or_duplicate_ones_nothing(
    start_project: Callable[..., Started],
    make_user,
    api_server,
    aggregator: DirectAggregator,
    server_blobs,
    sessions: sessionmaker[Session],
    schema: WeightSchema,
    amqp_url: str,
) -> None:
    started = start_project(Hyperparameters(total_tasks=3, task_size=3))
    owner_before = started.owner.credits()
    # The API answers credits; the ledger and these sums are in work units (C converts).
    grant_amount = to_units(api_server.settings.credit_signup_grant)
    assert owner_before.balance == owner_before.granted == C(grant_amount)
    estimate = task_cost(samples=10, epochs=EPOCHS, parameters=schema.parameters)
    assert owner_before.committed == C(estimate)
    assert started.owner.project_cost(started.id).model_dump(mode="json") | {"state": "?"} == {
        "project_id": str(started.id),
        "state": "?",
        "estimate": C(estimate),
        "replicas": 0,  # replication is off in this test
        "spent": 0,
        "paid_tasks": 0,
        "remaining": C(estimate),
    }
    alice = Provider(make_user(api_server.url, "alice"))
    bob = Provider(make_user(api_server.url, "bob"))
    first, second, third = _claim_all(alice, amqp_url)

    # A corrupted delta is rejected and earns nothing.
    bad = alice.result(first, random_delta(schema, 0), sha256="0" * 64)
    assert aggregator.handle(bad).status == "rejected"
    assert alice.client.credits().earned == 0

    # Shard 0's lease lapses; the task is re-dispatched to bob, and alice's result wins.
    lapsed = datetime.now(UTC) - timedelta(seconds=1)
    with sessions.begin() as session:
        session.execute(
            update(Claim).where(Claim.id == second.claim_id).values(lease_expires_at=lapsed)
        )
        session.execute(
            update(Task).where(Task.id == second.task_id).values(lease_expires_at=lapsed)
        )
    bob_grant = bob.claim(second.task_id)
    win = alice.result(second, random_delta(schema, 1))
    assert aggregator.handle(win).status == "accepted"
    late = bob.result(bob_grant, random_delta(schema, 2))
    verdict = aggregator.handle(late)
    assert (verdict.status, verdict.reason) == ("rejected", "duplicate")
    assert bob.client.credits().earned == 0

    # The same message again, to this aggregator and to a restarted one: nothing more is paid.
    assert aggregator.handle(win) is None
    restarted = DirectAggregator(sessions, server_blobs, api_server.settings)
    assert restarted.handle(win) is None
    for grant in (first, third):
        # A fresh claim for the rejected task's shard is alice's same claim: send a good result.
        assert restarted.handle(alice.result(grant, random_delta(schema, 3))).status == "accepted"

    rows = {0: 3, 1: 3, 2: 4}
    earned = sum(
        task_cost(samples=rows[g.shard], epochs=EPOCHS, parameters=schema.parameters)
        for g in (first, second, third)
    )
    assert earned == estimate
    assert alice.client.credits().model_dump() | {"committed": 0, "available": 0} == {
        "balance": C(grant_amount + earned),
        "granted": C(grant_amount),
        "earned": C(earned),
        "spent": 0,
        "committed": 0,
        "available": 0,
    }
    owner = started.owner.credits()
    assert (owner.balance, owner.spent, owner.committed) == (
        C(grant_amount - earned),
        C(earned),
        0,
    )
    cost = started.owner.project_cost(started.id)
    assert (cost.spent, cost.paid_tasks, cost.remaining) == (C(earned), 3, 0)
    history = alice.client.credit_history()
    assert [line.kind for line in history] == ["work", "work", "work", "grant"]
    assert history[0].balance_after == C(grant_amount + earned)
    assert {line.task_id for line in history[:3]} == {g.task_id for g in (first, second, third)}
    board = started.owner.leaderboard(started.id)
    assert [(r.rank, r.username, r.credits, r.tasks) for r in board] == [
        (1, alice.client.me().username, C(earned), 3)
    ]
    assert alice.client.leaderboard(started.id) == board  # contributors may see it too
    assert any(r.user_id == alice.id for r in bob.client.leaderboard())
    with pytest.raises(Exception, match="no project"):
        bob.client.leaderboard(started.id)  # bob neither owns nor was paid for it
    assert_ledger_consistent(sessions, EPOCHS, schema.parameters)


def test_many_results_accepted_at_once_by_two_aggregators(
    start_project: Callable[..., Started],
    make_user,
    api_server,
    server_blobs,
    sessions: sessionmaker[Session],
    schema: WeightSchema,
    amqp_url: str,
) -> None:
    """Four projects' results (each sent twice) handled by 8 threads on two aggregators."""
    providers = [Provider(make_user(api_server.url, f"p{i}")) for i in range(4)]
    messages = []
    for index in range(4):
        start_project(Hyperparameters(total_tasks=3, task_size=3, passes=1))
        provider = providers[index]
        for slot, grant in enumerate(_claim_all(provider, amqp_url)):
            messages.append(provider.result(grant, random_delta(schema, slot)))
    aggregators = [DirectAggregator(sessions, server_blobs, api_server.settings) for _ in range(2)]
    jobs = [(aggregators[i % 2], m) for i, m in enumerate(messages * 2)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        verdicts = list(pool.map(lambda job: job[0].handle(job[1]), jobs))
    handled = [v for v in verdicts if v is not None]
    assert len(handled) == len(messages)  # every duplicate recognised as already handled
    assert [v.status for v in handled].count("accepted") == 12
    with sessions() as session:
        assert (
            session.scalar(select(func.count()).select_from(Task).where(Task.state == "done")) == 12
        )
        assert (
            session.scalar(
                select(func.count())
                .select_from(CreditTransfer)
                .where(CreditTransfer.kind == "work")
            )
            == 12
        )
    assert_ledger_consistent(sessions, EPOCHS, schema.parameters)
    earned = sum(to_units(p.client.credits().earned) for p in providers)
    assert earned == 4 * task_cost(samples=10, epochs=EPOCHS, parameters=schema.parameters)
    overall = providers[0].client.leaderboard()
    assert sum(to_units(r.credits) for r in overall) == earned
    assert [r.credits for r in overall] == sorted((r.credits for r in overall), reverse=True)


def test_the_ledger_refuses_edits_and_unbalanced_transfers(
    api_server, make_user, sessions: sessionmaker[Session]
) -> None:
    user = make_user(api_server.url)
    user_id = int(user.me().id)
    with sessions() as session:
        with pytest.raises(DBAPIError, match="append-only"):
            session.execute(update(CreditEntry).values(amount=CreditEntry.amount * 2))
        session.rollback()
        with pytest.raises(DBAPIError, match="append-only"):
            session.execute(text("DELETE FROM credit_transfers"))
        session.rollback()
        with pytest.raises(ValueError, match="summing to zero"):
            ledger.post(session, kind="grant", reference="x", legs=[ledger.Leg("user:1", 5, 1)])
        # Written around the ledger module, an unbalanced transfer fails at commit.
        transfer = session.scalar(
            text(
                "INSERT INTO credit_transfers (kind, reference, memo) "
                "VALUES ('grant', 'forged', '') RETURNING id"
            )
        )
        session.execute(
            text(
                "INSERT INTO credit_entries (transfer_id, account, user_id, amount) "
                "VALUES (:t, :a, :u, 1000)"
            ),
            {"t": transfer, "a": ledger.user_account(user_id), "u": user_id},
        )
        with pytest.raises(DBAPIError, match="unbalanced"):
            session.commit()
    assert user.credits().balance == api_server.settings.credit_signup_grant
    # The grant is given once, however often it is asked for.
    with sessions.begin() as session:
        assert not ledger.ensure_grant(session, user_id, 10**6)
    assert user.credits().granted == api_server.settings.credit_signup_grant
