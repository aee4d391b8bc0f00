"""The agent's status as the GUI reads it: phases in order, the recent tasks and how each
ended, and the outage countdown; and the task list merging the agent's records with the
server's verdicts."""

from __future__ import annotations

import threading
import uuid
from dataclasses import replace
from datetime import UTC, datetime

from daig.broker import Outcome, run_consumer
from daig.contract.http import ProviderResultOut
from daig_cli.processes import free_port
from provider_agent.status import RECENT_TASKS, AgentStatus, Outage, TaskRecord, training_phase
from requestor_gui.activity_models import event_lines, task_rows


def _record(task_id: str, started_at: float = 100.0) -> TaskRecord:
    return TaskRecord(task_id, "digits", "alice", round=2, shard=5, started_at=started_at)


def _result(task_id: str, status: str, **fields) -> ProviderResultOut:
    values = {
        "message_id": uuid.uuid4(),
        "task_id": task_id,
        "project_id": uuid.uuid4(),
        "project_name": "digits",
        "round": 2,
        "shard": 5,
        "status": status,
        "reason": None,
        "detail": None,
        "received_at": datetime(2026, 12, 5, 1, 2, 3, tzinfo=UTC),
        "fit_seconds": 1.5,
        "credits": 0,
    }
    return ProviderResultOut.model_validate(values | fields)


def test_phases_are_kept_in_order_without_repeats() -> None:
    status = AgentStatus()
    status.begin_task(_record("t1"))
    for phase in ("downloading rows", training_phase(1, 2), training_phase(1, 2)):
        status.set_phase(phase)
    status.set_phase(training_phase(2, 2))
    status.set_phase("uploading")
    assert status.phases == (
        "downloading rows",
        "training epoch 1/2",
        "training epoch 2/2",
        "uploading",
    )
    status.end_task("t1", "sent")
    assert status.phase is None and status.phases[-1] == "uploading"  # kept until the next
    status.begin_task(_record("t2"))
    assert status.phases == () and [r.task_id for r in status.recent] == ["t2", "t1"]


def test_a_task_ends_once_with_its_duration_and_the_list_is_bounded() -> None:
    status = AgentStatus()
    status.begin_task(_record("t1", started_at=0.0))
    status.end_task("t1", "given back")
    status.end_task("t1", "sent")  # a second ending does not rewrite the first
    (record,) = status.recent
    assert record.outcome == "given back" and record.seconds > 0
    for n in range(RECENT_TASKS + 5):
        status.begin_task(_record(f"x{n}"))
    assert len(status.recent) == RECENT_TASKS and status.recent[0].task_id == f"x{n}"


def test_the_outage_counts_down_to_the_next_try() -> None:
    outage = Outage("the DAIG server", "connection refused", retry_at=110.0)
    assert outage.retry_in(now=100.2) == 10
    assert outage.text(now=104.0) == "the DAIG server is unreachable; retrying in 6 s"
    assert outage.retry_in(now=200.0) == 0


def test_the_task_list_prefers_the_servers_verdict() -> None:
    a, b, c, d = (str(uuid.uuid4()) for _ in range(4))
    records = (
        _record(a),
        replace(_record(b), outcome="sent", seconds=4.0),
        replace(_record(c), outcome="sent", seconds=5.0),
    )
    results = [
        _result(c, "rejected", reason="bad_delta", detail="the delta has NaN values"),
        _result(d, "accepted", credits=2.886, round=0, shard=1),  # an earlier session's
    ]
    rows = task_rows(records, results, phase="training epoch 2/5")
    assert [(r.task_id, r.outcome) for r in rows] == [
        (a, "training epoch 2/5"),
        (b, "sent; waiting for the server's verdict"),
        (c, "rejected: the delta has NaN values"),
        (d, "accepted"),
    ]
    assert rows[0].round == 3 and rows[3].round == 1 and rows[3].credits == 2.886
    assert rows[0].seconds is None and rows[2].seconds == 5.0 and rows[2].credits == 0
    lines = event_lines(results)
    assert lines[0] == (
        "2026-12-05 01:02:03  rejected: the delta has NaN values — digits, round 3, shard 5"
    )
    assert lines[1].endswith("accepted — digits, round 1, shard 1 (+2.89 credits)")


def test_a_refused_broker_connection_is_reported_with_the_wait() -> None:
    stop = threading.Event()
    lost: list[tuple[str, float]] = []

    def on_lost(error: BaseException, wait: float) -> None:
        lost.append((type(error).__name__, wait))
        if len(lost) == 2:
            stop.set()

    run_consumer(
        f"amqp://guest:guest@127.0.0.1:{free_port()}/",
        "nowhere",
        lambda delivery, session: Outcome.ACK,
        stop,
        on_lost=on_lost,
    )
    assert [wait for _, wait in lost] == [0.5, 1.0]  # the backoff the agent counts down
