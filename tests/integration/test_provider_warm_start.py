"""Warm start: the training process imports and warms up TensorFlow when the agent starts, so
the first task does not wait for it; the status shows the warm-up; Stop ends it at once; a
replaced child warms up in the background."""

from __future__ import annotations

import os
import time
from pathlib import Path

from provider_agent.status import STARTING_TENSORFLOW, WAITING
from provider_agent.trainer import RowsLike, Trainer
from tests.helpers.agents import running, volunteer_agent
from tests.helpers.training import train_job
from tests.helpers.waiting import wait_until

DIGITS_ROWS = RowsLike("float32", [64], "int64", [], validation=False)
READY_SECONDS = 240  # a TensorFlow import on the loaded 2-core machine took up to 33 s


def _alive(pid: int) -> bool:
    """Whether the process exists (the trainer reaps the children it kills)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_the_child_is_ready_before_any_task_and_its_first_task_reuses_it(
    digits_files, tmp_path: Path
) -> None:
    trainer = Trainer(threads=1, max_tasks=2)
    try:
        trainer.start()
        assert trainer.state == "starting", "start() returns while TensorFlow imports"
        wait_until(lambda: trainer.poll() == "ready", READY_SECONDS, what="the child ready")
        assert trainer.startup["import"] > 0 and trainer.startup["warmup"] > 0
        pid = trainer.child_pid()
        job = train_job(digits_files, tmp_path)

        trainer.prepare(job.model_path, job.model_sha256, DIGITS_ROWS)
        first = trainer.run(job, wait=time.sleep, should_stop=lambda: False)
        assert first.ok, first.error
        assert trainer.child_pid() == pid, "the warm child trained the first task"
        assert "wait_ready" not in first.timings, "the first task did not wait for TensorFlow"
        assert {"load", "trace", "setup"} <= first.timings.keys()

        trainer.prepare(job.model_path, job.model_sha256, DIGITS_ROWS)
        second = trainer.run(job, wait=time.sleep, should_stop=lambda: False)
        assert second.ok, second.error
        assert "load" not in second.timings and "trace" not in second.timings

        # Its max_tasks (2) done, the child is replaced at once, warming up in the background.
        assert trainer.child_pid() not in (None, pid)
        assert trainer.state == "starting"
        assert not _alive(pid)
    finally:
        trainer.close()


def test_a_task_sent_while_the_child_starts_waits_for_it(digits_files, tmp_path: Path) -> None:
    trainer = Trainer(threads=1)
    try:
        trainer.start()
        job = train_job(digits_files, tmp_path)
        outcome = trainer.run(job, wait=time.sleep, should_stop=lambda: False)
        assert outcome.ok, outcome.error
        assert outcome.timings["wait_ready"] > 0
        assert trainer.state == "ready"
    finally:
        trainer.close()


def test_the_status_shows_the_warm_up_and_stop_ends_it_at_once(
    api_server, make_user, broker_session, tmp_path: Path
) -> None:
    agent = volunteer_agent(api_server, make_user, tmp_path, memory_mb=2048)
    with running(agent) as runner:
        wait_until(lambda: agent.status.state == STARTING_TENSORFLOW, 30, what="the warm-up")
        pid = agent._trainer.child_pid()
        assert pid is not None and _alive(pid), "the child runs while the agent waits for tasks"
        stopped_at = time.monotonic()
        agent.stop.set()
        runner.join(10)
        assert not runner.is_alive(), "Stop during the TensorFlow import ends the agent at once"
        assert time.monotonic() - stopped_at < 10
        assert agent.status.state == "stopped"
        assert not _alive(pid), "the half-started child is gone"


def test_the_agent_says_waiting_once_the_child_is_warm(
    api_server, make_user, broker_session, tmp_path: Path
) -> None:
    agent = volunteer_agent(api_server, make_user, tmp_path, memory_mb=2048)
    seen: list[str] = []
    with running(agent) as runner:

        def waiting() -> bool:
            if not seen or seen[-1] != agent.status.state:
                seen.append(agent.status.state)
            return agent.status.state == WAITING

        wait_until(waiting, READY_SECONDS, interval=0.05, what="the agent waiting for tasks")
        assert STARTING_TENSORFLOW in seen, seen
        assert agent._trainer.state == "ready"
        assert agent._trainer.startup["start_to_ready"] > 0
    assert not runner.is_alive()
