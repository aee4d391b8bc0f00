"""A volunteer's limits are really applied: TensorFlow in the training child sees the thread
cap, the child's heap is capped by the kernel at the memory limit, a task needing more memory
is stopped and says so, and an agent on battery takes no task until mains power is back.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from daig.db.models import Claim
from provider_agent import agent as agent_module
from provider_agent.politeness import Politeness, power_source
from provider_agent.trainer import Trainer
from tests.helpers.agents import running, volunteer_agent
from tests.helpers.queues import ready_count
from tests.helpers.training import train_job
from tests.helpers.waiting import wait_until

MB = 1024 * 1024


def _proc_limit(pid: int, name: str) -> str:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith(name):
            return line.split()[len(name.split())]
    raise AssertionError(f"no {name} in /proc/{pid}/limits")


def test_tensorflow_sees_the_thread_cap_and_the_heap_is_capped(digits_files, tmp_path) -> None:
    trainer = Trainer(threads=1, memory_mb=1500)
    try:
        limits = trainer.limits()
        assert limits == {
            "intra_op_threads": 1,
            "inter_op_threads": 1,
            "data_limit_bytes": 1500 * MB,
        }
        pid = trainer.child_pid()
        assert pid is not None and _proc_limit(pid, "Max data size") == str(1500 * MB)
        # The caps leave room for real training.
        outcome = trainer.run(
            train_job(digits_files, tmp_path), wait=time.sleep, should_stop=lambda: False
        )
        assert outcome.ok, outcome.error
    finally:
        trainer.close()
    uncapped = Trainer()
    try:
        assert uncapped.limits()["data_limit_bytes"] is None
    finally:
        uncapped.close()


def test_a_task_needing_more_memory_than_allowed_is_stopped(digits_files, tmp_path) -> None:
    job = train_job(digits_files, tmp_path)
    # 1.2 GB of rows: loading them alone is over the 1200 MB limit.
    np.save(job.x_path, np.zeros((4_700_000, 64), dtype=np.float32))
    np.save(job.y_path, np.zeros(4_700_000, dtype=np.int64))
    trainer = Trainer(threads=1, memory_mb=1200)
    try:
        outcome = trainer.run(job, wait=time.sleep, should_stop=lambda: False)
    finally:
        trainer.close()
    assert not outcome.ok and outcome.resource_limit, outcome.error


def test_an_agent_on_battery_waits_and_resumes_on_mains_power(
    start_project,
    api_server,
    make_user,
    sessions,
    amqp_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from daig.hyperparams import Hyperparameters

    monkeypatch.setattr(agent_module, "POLITENESS_CHECK_SECONDS", 0.3)
    started = start_project(Hyperparameters(total_tasks=3, task_size=3, epochs=1))
    assert ready_count(amqp_url, "daig.tasks") == 3
    supplies = tmp_path / "power_supply"
    for name, files in {
        "AC": {"type": "Mains", "online": "0"},
        "BAT0": {"type": "Battery"},
    }.items():
        (supplies / name).mkdir(parents=True)
        for key, value in files.items():
            (supplies / name / key).write_text(value)
    (supplies / "BAT0" / "status").write_text("Discharging")
    agent = volunteer_agent(api_server, make_user, tmp_path, max_tasks=1)
    agent.politeness = Politeness(threads=1, power_probe=lambda: power_source(supplies))
    with running(agent) as runner:
        wait_until(lambda: agent.status.state.startswith("paused"), 30, what="agent paused")
        assert agent.status.paused_because == "running on battery"
        assert agent.status.limits["power"] == "on battery: paused"
        assert agent.status.limits["threads"] == "1"
        time.sleep(2)
        assert ready_count(amqp_url, "daig.tasks") == 3  # no task taken while paused
        with sessions() as session:
            assert session.query(Claim).filter(Claim.project_id == started.id).count() == 0

        (supplies / "AC" / "online").write_text("1")
        (supplies / "BAT0" / "status").write_text("Charging")
        wait_until(lambda: agent.status.tasks_done == 1, 180, what="a task trained on mains")
        assert agent.status.paused_because is None
        assert agent.status.limits["power"] == "on mains power"
        runner.join(30)
        assert not runner.is_alive(), "the agent stops after max_tasks"
