"""The aggregator's checks before its transaction: a result counts only from the broker user
of the provider it names, whoever hands it in, and only on its project's partition."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from daig.contract.messages import TrainingStatus, TrainResult
from daig.db.models import RejectReason
from daig.topology import ResultPartitions
from daig_aggregator.prepare import Incoming, Prepared, Preparer


class _NoFacts:
    """No project is known: nothing past the route checks is looked at."""

    def get(self, project_id: uuid.UUID) -> None:
        return None


def _prepare(*items: Incoming, vhost: str = "/") -> list[Prepared]:
    with ThreadPoolExecutor(1) as pool:
        facts: Any = _NoFacts()
        blobs: Any = None  # never reached: no project is known
        preparer = Preparer(facts, blobs, ResultPartitions(4), vhost, pool, pool)
        return preparer.prepare(list(items), set())


def _message(provider_id: int = 7) -> TrainResult:
    return TrainResult(
        project_id=uuid.uuid4(),
        round=0,
        task_id=uuid.uuid4(),
        claim_id=uuid.uuid4(),
        provider_id=provider_id,
        status=TrainingStatus.FAILED,
        error="out of memory",
    )


def test_only_the_named_providers_broker_user_passes() -> None:
    message = _message(provider_id=7)
    honest, other, unsigned = _prepare(
        Incoming(message, "daig-provider-7"),
        Incoming(message, "daig-provider-8"),
        Incoming(message, None),
    )
    assert honest.early is None
    for forged in (other, unsigned):
        assert forged.early is not None
        assert forged.early.reason == RejectReason.WRONG_PROVIDER


def test_the_sender_check_knows_the_vhost() -> None:
    message = _message(provider_id=7)
    there, here = _prepare(
        Incoming(message, "daig-provider-7@grid"),
        Incoming(message, "daig-provider-7"),
        vhost="grid",
    )
    assert there.early is None
    assert here.early is not None and here.early.reason == RejectReason.WRONG_PROVIDER


def test_the_sender_cannot_be_left_out() -> None:
    """There is no default sender that skips the check: it must be said, even as None."""
    with pytest.raises(TypeError):
        Incoming(_message())  # type: ignore[call-arg]


def test_a_result_on_another_projects_partition_is_refused() -> None:
    message = _message(provider_id=7)
    owner = ResultPartitions(4).of(message.project_id)
    right, wrong = _prepare(
        Incoming(message, "daig-provider-7", owner),
        Incoming(message, "daig-provider-7", (owner + 1) % 4),
    )
    assert right.early is None
    assert wrong.early is not None and wrong.early.reason == RejectReason.WRONG_PARTITION
