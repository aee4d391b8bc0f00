"""Trust in volunteers: who gets replicated, and what a replicated task's results decide.

BOINC's adaptive replication, adapted to training. A provider account's record counts its
verified-valid and verified-invalid results (``provider_trust``). Until it has
``TRUSTED_AFTER`` valid ones, every task it takes is replicated; after that a project's
``verify_fraction`` of them, never fewer than ``MIN_REPLICATION``: a volunteer can never tell
that cheating is safe. One verified-invalid result quarantines the account.

A replicated task's results are compared pairwise (``daig.agreement``) once at least two
are in; the decision (``decide``) is pure and the aggregator carries it out.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

TRUSTED_AFTER = 10  # verified-valid results before an account is replicated only sometimes
MIN_REPLICATION = 0.01  # the least share of a trusted account's tasks that are replicated
MAX_RESULTS = 4  # results of one task at most: past it, no majority is taken as inconclusive


@dataclass(frozen=True)
class Standing:
    """What the record says of one provider account."""

    verified_valid: int = 0
    verified_invalid: int = 0
    quarantined: bool = False

    @property
    def trusted(self) -> bool:
        return self.verified_valid >= TRUSTED_AFTER and self.verified_invalid == 0


def replication_chance(standing: Standing, verify_fraction: float) -> float:
    """The chance that a task this account takes is replicated."""
    if not standing.trusted:
        return 1.0
    return min(1.0, max(MIN_REPLICATION, verify_fraction))


def replicate(standing: Standing, verify_fraction: float, draw: Callable[[], float]) -> bool:
    """Whether to replicate this account's task; ``draw`` returns a uniform [0, 1) number."""
    return draw() < replication_chance(standing, verify_fraction)


class Outcome(StrEnum):
    WAIT = "wait"  # fewer than two results: wait for the replica's
    SETTLED = "settled"  # a majority agrees: accept one of it, the rest were outvoted
    MORE = "more"  # no majority yet: make one more replica
    INCONCLUSIVE = "inconclusive"  # MAX_RESULTS and still no majority


@dataclass(frozen=True)
class Candidate:
    """One result of a replicated task, as the decision sees it."""

    result_id: uuid.UUID
    provider_id: int
    group: int  # the provider's trust group (``users.trust_group``)


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    accepted: uuid.UUID | None = None  # the result counted in the round
    agreed: frozenset[uuid.UUID] = field(default_factory=frozenset)  # the rest of its majority
    # outside the majority: verified invalid if ``verified``, else merely not counted
    outvoted: frozenset[uuid.UUID] = field(default_factory=frozenset)
    verified: bool = False  # False: accepted without an independent second result


def decide(
    candidates: Sequence[Candidate], agree: Callable[[uuid.UUID, uuid.UUID], bool]
) -> Decision:
    """What a replicated task's results (in arrival order) decide, given pairwise agreement.

    A majority is a set of mutually agreeing results from at least two trust groups, larger
    than any other such set. Its first result is accepted, the rest of it agreed; results
    outside it were outvoted. Two results of one group (a replica nobody else took in time)
    that agree are accepted unverified: nobody's record changes.
    """
    if len(candidates) < 2:
        return Decision(Outcome.WAIT)
    ids = [c.result_id for c in candidates]
    best: list[Candidate] = []
    for anchor in candidates:
        cluster = [c for c in candidates if c is anchor or agree(anchor.result_id, c.result_id)]
        if len(cluster) > len(best):
            best = cluster
    others = [c for c in candidates if c not in best]
    if len(best) >= 2 and len({c.group for c in best}) == 1:
        # One group agreeing with itself proves nothing: accepted, nobody's record changes.
        return Decision(
            Outcome.SETTLED,
            accepted=best[0].result_id,
            agreed=frozenset(c.result_id for c in best[1:]),
            outvoted=frozenset(c.result_id for c in others),
            verified=False,
        )
    if len(best) >= 2 and len(best) > len(others):
        return Decision(
            Outcome.SETTLED,
            accepted=best[0].result_id,
            agreed=frozenset(c.result_id for c in best[1:]),
            outvoted=frozenset(c.result_id for c in others),
            verified=True,
        )
    if len(candidates) >= MAX_RESULTS:
        return Decision(
            Outcome.INCONCLUSIVE, accepted=ids[0], outvoted=frozenset(ids[1:]), verified=False
        )
    return Decision(Outcome.MORE)
