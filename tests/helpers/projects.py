"""Small training data and started projects, as a requestor makes them over the real API."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from daig.client import DaigClient
from daig.contract.http import ProjectOut
from daig.hyperparams import Hyperparameters


@dataclass(frozen=True)
class SmallData:
    data: Path
    labels: Path
    x: np.ndarray
    y: np.ndarray


def write_small_data(directory: Path, rows: int, features: int = 64, seed: int = 0) -> SmallData:
    """``rows`` rows of random float32 features and int64 labels, as ``.npy`` files."""
    rng = np.random.default_rng(seed)
    x = rng.random((rows, features), dtype=np.float32)
    y = rng.integers(0, 10, size=rows, dtype=np.int64)
    directory.mkdir(parents=True, exist_ok=True)
    data, labels = directory / f"x{rows}.npy", directory / f"y{rows}.npy"
    np.save(data, x, allow_pickle=False)
    np.save(labels, y, allow_pickle=False)
    return SmallData(data, labels, x, y)


def create_started_project(
    client: DaigClient, model: Path, data: SmallData, params: Hyperparameters
) -> ProjectOut:
    project = client.create_project(f"p-{uuid.uuid4().hex[:6]}", params)
    client.upload_file(project.id, "model", model)
    client.upload_file(project.id, "data", data.data)
    client.upload_file(project.id, "labels", data.labels)
    return client.start(project.id)


@dataclass
class Started:
    """A started project (what the ``start_project`` fixture returns)."""

    owner: DaigClient
    project: ProjectOut
    id: uuid.UUID
    data: SmallData
