"""Reproducible tasks: two training processes, with 1 and 2 threads, produce the same delta
for one seeded task (dropout included), and a different seed gives a different one."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import pytest

from daig.agreement import layer_distance
from daig.weights.h5weights import read_weights
from daig.weights.schema import WeightSchema
from daig.weights.stream import load_weights, save_weights
from provider_agent.trainer import Trainer, TrainJob
from tests.helpers.training import train_job

pytestmark = pytest.mark.slow


def _with_dropout(job: TrainJob, directory: Path) -> TrainJob:
    import keras

    model = keras.Sequential(
        [
            keras.Input(shape=(64,)),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Dropout(0.3),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    path = directory / "dropout.h5"
    model.save(path)
    weights = read_weights(path)
    save_weights(directory / "w-dropout.dwt", weights)
    return replace(
        job,
        model_path=str(path),
        model_sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
        weights_path=str(directory / "w-dropout.dwt"),
        weight_schema=WeightSchema.of(weights).to_json(),
    )


def _delta(trainer: Trainer, job: TrainJob, name: str) -> list:
    job = replace(job, delta_path=str(Path(job.delta_path).with_name(name)))
    outcome = trainer.run(job, wait=lambda _: None, should_stop=lambda: False)
    assert outcome.ok, outcome.error
    return load_weights(Path(job.delta_path), WeightSchema.from_json(job.weight_schema))


def test_a_seeded_task_trains_the_same_on_one_and_two_threads(digits_files, tmp_path) -> None:
    plain = replace(train_job(digits_files, tmp_path, epochs=3), seed=1234)
    dropout = _with_dropout(plain, tmp_path)
    one, two = Trainer(threads=1), Trainer(threads=2)
    try:
        for name, job in (("plain", plain), ("dropout", dropout)):
            a = _delta(one, job, f"{name}-a.dwt")
            b = _delta(two, job, f"{name}-b.dwt")
            again = _delta(one, job, f"{name}-again.dwt")  # the warm child, a second time
            other = _delta(two, replace(job, seed=99), f"{name}-other.dwt")
            assert layer_distance(a, b) == 0.0, name
            assert layer_distance(a, again) == 0.0, name
            assert layer_distance(a, other) > 1e-3, f"{name}: the seed changes the training"
    finally:
        one.close()
        two.close()
