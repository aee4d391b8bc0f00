"""What a Flower client trains, done exactly the way a DAIG task does it.

Shared by both Flower runtimes of the benchmark (``client_app``/``server_app`` for the
Deployment Runtime, ``legacy`` for ``start_server``/``start_client``). Only the standard
library, NumPy and ``daig`` are imported here (no ``bench``), because this file is also
copied into the Flower App Bundle that SuperNodes install.

A task is (round, slot): client ``slot`` trains shard ``Plan.shards(round)[slot]`` (rows
``[i*N//T, (i+1)*N//T)``) for ``epochs`` epochs from the round's global weights, with the
optimizer put back to its just-compiled state first (``FreshOptimizer``, as DAIG's training
child does), and returns its new weights and the shard's row count, so that FedAvg's
sample-weighted mean of weights equals DAIG's ``w + sample-weighted mean of deltas``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

Weights = list[np.ndarray]


@dataclass(frozen=True)
class Work:
    """The same work on both sides: model file, data, shards, K, epochs, batch, passes."""

    model: str
    data: str
    labels: str
    total_shards: int
    clients: int
    epochs: int
    batch_size: int
    passes: int

    @classmethod
    def from_config(cls, config: Any) -> Work:
        return cls(
            model=str(config["model"]),
            data=str(config["data"]),
            labels=str(config["labels"]),
            total_shards=int(config["total-shards"]),
            clients=int(config["clients"]),
            epochs=int(config["epochs"]),
            batch_size=int(config["batch-size"]),
            passes=int(config["passes"]),
        )

    def as_config(self) -> dict[str, str | int]:
        return {
            "model": self.model,
            "data": self.data,
            "labels": self.labels,
            "total-shards": self.total_shards,
            "clients": self.clients,
            "epochs": self.epochs,
            "batch-size": self.batch_size,
            "passes": self.passes,
        }

    def plan(self, rows: int) -> Any:
        from daig.planning import Plan

        return Plan(rows, self.total_shards, self.clients, self.passes)

    @property
    def rounds(self) -> int:
        from daig.planning import total_rounds

        return total_rounds(self.total_shards, self.clients, self.passes)


def quiet() -> None:
    """Import TensorFlow without its start-up chatter in the logs."""
    from daig.logs import quiet_tensorflow

    quiet_tensorflow()


def process_seconds() -> float:
    """How long this process has lived (Linux ``/proc``), start-up and imports included."""
    ticks = os.sysconf("SC_CLK_TCK")
    with open("/proc/self/stat") as stat:
        started = int(stat.read().rsplit(")", 1)[1].split()[19]) / ticks
    with open("/proc/uptime") as uptime:
        return float(uptime.read().split()[0]) - started


def initial_weights(model_path: str) -> Weights:
    """The model file's weights in DAIG's canonical (legacy h5) order."""
    from daig.modelfile.keras_load import canonical_weights, load_model

    model, _ = load_model(Path(model_path))
    return [np.asarray(v.numpy()) for v in canonical_weights(model)]


class ShardTrainer:
    """A loaded, compiled model kept for the life of the process (as DAIG's training child)."""

    def __init__(self, work: Work) -> None:
        from daig.modelfile.keras_load import FreshOptimizer, canonical_weights, load_model

        self.work = work
        self.model, _ = load_model(Path(work.model))
        self.optimizer = FreshOptimizer(self.model)
        self.variables = canonical_weights(self.model)
        self.x = np.load(work.data, allow_pickle=False)
        self.y = np.load(work.labels, allow_pickle=False)
        self.plan = work.plan(len(self.x))

    def train(self, round_index: int, slot: int, weights: Weights) -> tuple[Weights, int, float]:
        """(new weights, samples, fit seconds) of task (round_index, slot), 0-based round."""
        shard = self.plan.shards(round_index)[slot]
        start, stop = self.plan.rows(shard)
        for variable, value in zip(self.variables, weights, strict=True):
            variable.assign(value)
        self.optimizer.reset()  # as if the model file had just been loaded
        began = time.perf_counter()
        self.model.fit(
            self.x[start:stop],
            self.y[start:stop],
            epochs=self.work.epochs,
            batch_size=self.work.batch_size,
            verbose=0,
        )
        fit_seconds = time.perf_counter() - began
        return [np.asarray(v.numpy()) for v in self.variables], stop - start, fit_seconds


_trainer: ShardTrainer | None = None


def trainer(work: Work) -> ShardTrainer:
    """The process's trainer (built on first use; a ClientApp process may serve one task)."""
    global _trainer
    if _trainer is None or _trainer.work != work:
        _trainer = ShardTrainer(work)
    return _trainer
