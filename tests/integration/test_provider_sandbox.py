"""The provider's training sandbox: no credentials in the child, and the volunteer's limits."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from provider_agent.trainer import Trainer
from tests.helpers.training import train_job


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def test_the_training_child_holds_no_credentials_and_obeys_the_thread_cap(
    digits_files, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAIG_PASSWORD", "volunteer-secret")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "cloud-secret")
    trainer = Trainer(threads=1)
    seen: dict[str, str] = {}

    def wait(seconds: float) -> None:
        time.sleep(seconds)
        pid = trainer.child_pid()
        if pid and not seen:
            seen.update(_environ(pid))

    try:
        outcome = trainer.run(
            train_job(digits_files, tmp_path), wait=wait, should_stop=lambda: False
        )
    finally:
        trainer.close()
    assert outcome.ok, outcome.error
    assert seen, "the child's environment was read"
    assert not any("SECRET" in k or "PASSWORD" in k or k.startswith("DAIG_") for k in seen)
    assert seen["OMP_NUM_THREADS"] == "1" and seen["TF_NUM_INTRAOP_THREADS"] == "1"
    assert os.environ["DAIG_PASSWORD"] == "volunteer-secret", "the agent keeps its own"


def test_a_task_over_the_memory_cap_fails_cleanly_and_says_why(digits_files, tmp_path) -> None:
    trainer = Trainer(memory_mb=100)  # TensorFlow alone needs more than this
    try:
        outcome = trainer.run(
            train_job(digits_files, tmp_path), wait=lambda s: None, should_stop=lambda: False
        )
        assert not outcome.ok and outcome.resource_limit
        assert "100 MB" in (outcome.error or "")
        assert trainer.child_pid() is None, "the child was stopped"
    finally:
        trainer.close()
