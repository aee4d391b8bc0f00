"""DAIG's training hyperparameters: names (a public contract), defaults, ranges and hints.

Shared by the API (request validation), the CLI (option help) and the GUI (form hints), so a
value can be refused with the same words wherever it is typed.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Aggregation = Literal["mean", "median", "trimmed_mean", "clipped_mean"]
DeltaCodec = Literal["fp32", "fp16", "int8"]
OuterOptimizer = Literal["average", "momentum", "nesterov"]

HINTS = {
    "epochs": "Epochs each provider runs on its shard per task (passed to model.fit).",
    "batch_size": "Mini-batch size for model.fit on each shard.",
    "validation_split": "Fraction of each shard held out by model.fit for validation (0 = none).",
    "total_tasks": (
        "Number of data shards T. More shards means smaller, quicker tasks "
        "(shard i is rows [i*N/T, (i+1)*N/T))."
    ),
    "task_size": (
        "K: tasks whose updates are averaged per round. Small K: more rounds, usually a better "
        "model, fewer volunteers at once. Large K: more volunteers in parallel, finishes "
        "sooner, often at some cost in accuracy."
    ),
    "max_contributors": (
        "Most tasks of this project in flight at once (default K). More than K buys nothing."
    ),
    "passes": "Sweeps over all shards; one pass is ceil(T/K) rounds.",
    "aggregation": (
        "How a round's K updates are combined: mean (sample-weighted, the original), median "
        "(coordinate-wise), trimmed_mean (drops the extremes of each coordinate) or "
        "clipped_mean (scales each update down to clip_factor x the round's median norm). "
        "The robust ones resist a few broken or malicious volunteers."
    ),
    "trim_fraction": "trimmed_mean: fraction of the K values dropped at each end (0.2 of 5 = 1).",
    "clip_factor": "clipped_mean: largest norm allowed, as a multiple of the round's median norm.",
    "delta_codec": (
        "How providers send their updates: fp32 (exact), fp16 (half the bytes) or int8 "
        "(block-wise 8-bit, about 4x fewer bytes, a slight loss of precision)."
    ),
    "outer_optimizer": (
        "How the server applies a round's combined update: average (w += update, the "
        "original), momentum or nesterov (server momentum on the update, as DiLoCo)."
    ),
    "outer_learning_rate": "Step size of the outer optimizer (1.0 with average = plain averaging).",
    "outer_momentum": "Momentum of the outer optimizer (momentum and nesterov only).",
    "share": (
        "Your project's weight when projects share the volunteers (1 = an equal share). "
        "Lower it to let others, or your own other projects, go first; an operator may "
        "raise it."
    ),
    "max_norm_ratio": (
        "Reject an update whose norm exceeds this multiple of the median norm of recent "
        "accepted updates (0 = never)."
    ),
}


class Hyperparameters(BaseModel):
    """Validated hyperparameters; ``max_contributors`` defaults to ``task_size``."""

    model_config = ConfigDict(extra="forbid")

    epochs: int = Field(default=5, ge=1, le=1000, description=HINTS["epochs"])
    batch_size: int = Field(default=32, ge=1, le=65536, description=HINTS["batch_size"])
    validation_split: float = Field(
        default=0.0, ge=0.0, le=0.9, description=HINTS["validation_split"]
    )
    total_tasks: int = Field(default=12, ge=1, le=100_000, description=HINTS["total_tasks"])
    task_size: int = Field(default=4, ge=1, le=10_000, description=HINTS["task_size"])
    max_contributors: int | None = Field(
        default=None, ge=1, le=10_000, description=HINTS["max_contributors"]
    )
    passes: int = Field(default=1, ge=1, le=1000, description=HINTS["passes"])
    aggregation: Aggregation = Field(default="mean", description=HINTS["aggregation"])
    trim_fraction: float = Field(default=0.2, ge=0.0, lt=0.5, description=HINTS["trim_fraction"])
    clip_factor: float = Field(default=1.0, gt=0.0, le=100.0, description=HINTS["clip_factor"])
    delta_codec: DeltaCodec = Field(default="fp32", description=HINTS["delta_codec"])
    outer_optimizer: OuterOptimizer = Field(default="average", description=HINTS["outer_optimizer"])
    outer_learning_rate: float = Field(
        default=1.0, gt=0.0, le=10.0, description=HINTS["outer_learning_rate"]
    )
    outer_momentum: float = Field(default=0.9, ge=0.0, lt=1.0, description=HINTS["outer_momentum"])
    max_norm_ratio: float = Field(default=10.0, ge=0.0, le=1e6, description=HINTS["max_norm_ratio"])
    share: float = Field(default=1.0, ge=0.05, le=1.0, description=HINTS["share"])

    @model_validator(mode="after")
    def _consistent(self) -> Hyperparameters:
        if self.task_size > self.total_tasks:
            raise ValueError(
                f"task_size (K={self.task_size}) cannot exceed total_tasks "
                f"(T={self.total_tasks}): a round combines K different shards"
            )
        if self.max_contributors is None:
            self.max_contributors = self.task_size
        return self

    @property
    def contributors(self) -> int:
        assert self.max_contributors is not None
        return self.max_contributors


def check_against_data(params: Hyperparameters, rows: int) -> None:
    """Refuse settings the uploaded data cannot support (raise ``ValueError``)."""
    if params.total_tasks > rows:
        raise ValueError(
            f"total_tasks ({params.total_tasks}) exceeds the {rows} rows of data; "
            "every shard needs at least one row"
        )
    smallest = rows // params.total_tasks
    if params.validation_split > 0 and int(smallest * (1 - params.validation_split)) < 1:
        raise ValueError(
            f"shards of {smallest} rows leave nothing to train on with validation_split "
            f"{params.validation_split}; use fewer total_tasks or a smaller validation_split"
        )
