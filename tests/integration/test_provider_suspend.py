"""Suspend, don't discard: a task whose politeness condition stops holding is frozen (the
training child is really stopped, state T), its lease is renewed meanwhile, it resumes when the
condition holds again and its result is accepted; past the suspension limit it is given back.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from daig.db.models import Claim, Result
from daig.hyperparams import Hyperparameters
from provider_agent import agent as agent_module
from provider_agent.agent import ProviderAgent
from provider_agent.politeness import Idle, Politeness
from tests.helpers.agents import running, volunteer_agent
from tests.helpers.queues import consuming_results
from tests.helpers.waiting import wait_until

pytestmark = pytest.mark.timeout(600)


def _process_state(pid: int) -> str:
    """The one-letter state in /proc/<pid>/stat (R running, S sleeping, T stopped...)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2]


class FakeIdle:
    """The volunteer's idle time, set by the test (the injectable idle probe)."""

    def __init__(self) -> None:
        self.seconds = 3600.0

    def __call__(self) -> Idle:
        return Idle(self.seconds, "test")


def _agent(api_server, make_user, tmp_path: Path, idle: FakeIdle, **options) -> ProviderAgent:
    agent = volunteer_agent(api_server, make_user, tmp_path, max_tasks=1, idle_minutes=1, **options)
    agent.politeness = Politeness(idle_minutes=1, threads=1, idle_probe=idle)
    return agent


def _training(agent: ProviderAgent) -> bool:
    return agent.status.state == "training" and agent.status.progress > 0


def test_a_task_suspended_while_the_volunteer_works_resumes_and_is_accepted(
    start_project,
    api_server,
    make_user,
    sessions,
    aggregator,
    amqp_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(agent_module, "POLITENESS_CHECK_SECONDS", 0.2)
    started = start_project(Hyperparameters(total_tasks=1, task_size=1, epochs=400))
    idle = FakeIdle()
    agent = _agent(api_server, make_user, tmp_path, idle)
    with running(agent) as runner:
        wait_until(lambda: _training(agent), 240, what="the task to start training")
        pid = agent._trainer.child_pid()
        assert pid is not None
        idle.seconds = 1.0  # the volunteer moves the mouse
        wait_until(lambda: agent.status.state.startswith("suspended"), 10, what="suspended")
        assert agent.status.state == (
            "suspended: the computer is in use (idle 0.0 of 1 min); "
            "resumes when the computer is idle again"
        )
        # Signals land asynchronously: the child is really stopped (T) within moments.
        wait_until(lambda: _process_state(pid) == "T", 5, what="the training child stopped")
        progress = agent.status.progress
        with sessions() as session:
            claim = session.query(Claim).filter(Claim.project_id == started.id).one()
            first_lease = claim.lease_expires_at
        # Longer than the lease's renewal interval (a third of 30 s): it is renewed meanwhile.
        time.sleep(14)
        assert _process_state(pid) == "T"
        assert agent.status.progress == progress, "no training while suspended"
        with sessions() as session:
            claim = session.query(Claim).filter(Claim.project_id == started.id).one()
            assert claim.state == "active"
            assert claim.lease_expires_at > first_lease, "the lease is renewed while suspended"

        idle.seconds = 3600.0  # the volunteer leaves
        wait_until(lambda: agent.status.state == "training", 10, what="training resumed")
        assert agent._trainer.child_pid() == pid, "the same process resumes: nothing discarded"
        wait_until(lambda: _process_state(pid) != "T", 5, what="the training child continued")
        with consuming_results(amqp_url, aggregator):
            runner.join(300)
            assert not runner.is_alive(), "the agent stops after its one task"
            assert agent.status.tasks_done == 1, agent.status.last_error

            def accepted() -> bool:
                with sessions() as session:
                    rows = session.query(Result).filter(Result.project_id == started.id).all()
                    return [r.status for r in rows] == ["accepted"]

            wait_until(accepted, 60, what="the resumed task's result accepted")


def test_a_task_suspended_past_the_limit_is_given_back_and_stop_is_instant(
    start_project,
    api_server,
    make_user,
    sessions,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(agent_module, "POLITENESS_CHECK_SECONDS", 0.2)
    started = start_project(Hyperparameters(total_tasks=1, task_size=1, epochs=400))
    idle = FakeIdle()
    agent = _agent(api_server, make_user, tmp_path, idle, suspend_minutes=0.1)
    with running(agent) as runner:
        wait_until(lambda: _training(agent), 240, what="the task to start training")
        pid = agent._trainer.child_pid()
        idle.seconds = 1.0
        wait_until(lambda: agent.status.state.startswith("suspended"), 10, what="suspended")

        def released() -> bool:
            with sessions() as session:
                claim = session.query(Claim).filter(Claim.project_id == started.id).one()
                return claim.state == "released"

        # 6 s of suspension allowed: then the task goes back to other volunteers.
        wait_until(released, 30, what="the task given back past the limit")
        assert not Path(f"/proc/{pid}").exists() or _process_state(pid) == "Z"
        assert agent.status.tasks_done == 0
        began = time.monotonic()
        agent.stop.set()
        runner.join(30)
        assert not runner.is_alive() and time.monotonic() - began < 10
