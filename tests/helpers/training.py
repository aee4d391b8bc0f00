"""``train_job``: a small provider training job on the digits example, for the trainer's tests."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from daig.weights.h5weights import read_weights
from daig.weights.schema import WeightSchema
from daig.weights.stream import save_weights
from provider_agent.trainer import TrainJob


def train_job(digits_files, tmp_path: Path, epochs: int = 1) -> TrainJob:
    """Train the first 200 digits rows for ``epochs``; the job's files go under ``tmp_path``."""
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
