"""daig.trust: who is replicated, and what a replicated task's results decide."""

from __future__ import annotations

import uuid

import pytest

from daig.trust import (
    MAX_RESULTS,
    MIN_REPLICATION,
    TRUSTED_AFTER,
    Candidate,
    Outcome,
    Standing,
    decide,
    replicate,
    replication_chance,
)


def test_a_new_account_is_always_replicated() -> None:
    for valid in range(TRUSTED_AFTER):
        assert replication_chance(Standing(verified_valid=valid), 0.1) == 1.0


def test_a_trusted_account_is_replicated_at_the_projects_fraction() -> None:
    assert replication_chance(Standing(verified_valid=TRUSTED_AFTER), 0.1) == 0.1
    assert replication_chance(Standing(verified_valid=500), 0.3) == 0.3


def test_never_zero() -> None:
    assert replication_chance(Standing(verified_valid=10_000), 0.0) == MIN_REPLICATION > 0


def test_an_account_with_an_invalid_result_is_never_trusted() -> None:
    standing = Standing(verified_valid=100, verified_invalid=1)
    assert not standing.trusted
    assert replication_chance(standing, 0.1) == 1.0


def test_replicate_draws_against_the_chance() -> None:
    trusted = Standing(verified_valid=TRUSTED_AFTER)
    assert replicate(trusted, 0.1, lambda: 0.05)
    assert not replicate(trusted, 0.1, lambda: 0.5)
    assert replicate(Standing(), 0.1, lambda: 0.999)


def _candidates(*groups: int) -> list[Candidate]:
    return [Candidate(uuid.uuid4(), provider_id=g * 10, group=g) for g in groups]


def _agree_within(*honest: Candidate):
    ids = {c.result_id for c in honest}
    return lambda a, b: a == b or (a in ids and b in ids)


def test_one_result_waits() -> None:
    assert decide(_candidates(1), lambda a, b: True).outcome is Outcome.WAIT


def test_two_agreeing_results_of_two_groups_settle_verified() -> None:
    a, b = _candidates(1, 2)
    decision = decide([a, b], lambda x, y: True)
    assert decision.outcome is Outcome.SETTLED
    assert decision.accepted == a.result_id
    assert decision.agreed == {b.result_id}
    assert decision.outvoted == frozenset()
    assert decision.verified


def test_a_disagreement_asks_for_one_more() -> None:
    a, b = _candidates(1, 2)
    assert decide([a, b], lambda x, y: x == y).outcome is Outcome.MORE


@pytest.mark.parametrize("cheater_index", [0, 1, 2])
def test_the_third_result_decides_by_majority(cheater_index: int) -> None:
    results = _candidates(1, 2, 3)
    cheater = results[cheater_index]
    honest = [c for c in results if c is not cheater]
    decision = decide(results, _agree_within(*honest))
    assert decision.outcome is Outcome.SETTLED
    assert decision.accepted == honest[0].result_id
    assert decision.agreed == {honest[1].result_id}
    assert decision.outvoted == {cheater.result_id}
    assert decision.verified


def test_one_groups_agreeing_results_are_accepted_unverified() -> None:
    a = Candidate(uuid.uuid4(), provider_id=1, group=1)
    b = Candidate(uuid.uuid4(), provider_id=2, group=1)
    decision = decide([a, b], lambda x, y: True)
    assert decision.outcome is Outcome.SETTLED
    assert decision.accepted == a.result_id
    assert decision.agreed == {b.result_id}
    assert not decision.verified


def test_no_majority_after_the_most_results_is_inconclusive() -> None:
    results = _candidates(*range(1, MAX_RESULTS + 1))
    decision = decide(results, lambda x, y: x == y)
    assert decision.outcome is Outcome.INCONCLUSIVE
    assert not decision.verified, "nobody is quarantined on an inconclusive vote"
    assert decision.accepted == results[0].result_id
    assert decision.outvoted == {r.result_id for r in results[1:]}
