"""The provider's training sandbox: no credentials in the child, and the volunteer's limits."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import numpy as np
import pytest

from daig.weights.h5weights import read_weights
from daig.weights.schema import WeightSchema
from daig.weights.stream import save_weights
from provider_agent.trainer import Trainer, TrainJob


def _job(digits_files, tmp_path: Path, epochs: int = 1) -> TrainJob:
    weights = read_weights(digits_files.model)
    save_weights(tmp_path / "w.dwt", weights)
    x = np.load(digits_files.data)[:200]
    y = np.load(digits_files.labels)[:200]
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    return TrainJob(
        model_path=str(digits_files.model),
        model_sha256=hashlib.sha256(digits_files.model.read_bytes()).hexdigest(),
        weights_path=str(tmp_path / "w.dwt"),
        weight_schema=WeightSchema.of(weights).to_json(),
        x_path=str(tmp_path / "x.npy"),
        y_path=str(tmp_path / "y.npy"),
        epochs=epochs,
        batch_size=32,
        validation_split=0.0,
        delta_path=str(tmp_path / "delta.dwt"),
    )


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
        outcome = trainer.run(_job(digits_files, tmp_path), wait=wait, should_stop=lambda: False)
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
            _job(digits_files, tmp_path), wait=lambda s: None, should_stop=lambda: False
        )
        assert not outcome.ok and outcome.resource_limit
        assert "100 MB" in (outcome.error or "")
        assert trainer.child_pid() is None, "the child was stopped"
    finally:
        trainer.close()
