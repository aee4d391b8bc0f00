"""How long a project would train with the volunteers online now: pure arithmetic, no I/O.

The formula (documented in README "Estimates before Start"):

    task seconds  t = overhead + (work / planned tasks) / rate
    parallel      p = min(agents online, max_contributors, K)
    seconds         = rounds x ceil(K / p) x t x (1 + replica share)

Work is counted as the ledger counts it, in sample x epoch x parameter units (a millionth of a
credit, ``daig.credits.units``), so ``work / planned tasks`` is the work of an average task and
``rate`` is the work one agent does per second. The server measures ``rate`` on the last
hour's accepted results (their pay in those units over the seconds from claim to result,
which include downloads and set-up, so ``overhead`` is then 0); before anything was measured
it assumes ``ASSUMED_RATE`` and ``ASSUMED_OVERHEAD_SECONDS``. Replicas (verification) train
beside their tasks on other agents: they add their share of the work.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from daig.elapsed import duration_text

# A modest laptop core on a small dense model; replaced by measurement once results arrive.
ASSUMED_RATE = 20_000_000.0
ASSUMED_OVERHEAD_SECONDS = 3.0  # download, model load and trace of a task's first step
NO_VOLUNTEERS = "no volunteers online: cannot estimate time"


@dataclass(frozen=True)
class Workload:
    """A project's plan in the terms the estimate needs."""

    work: int  # sample-epoch-parameters of every planned task once (no replicas)
    rounds: int
    task_size: int
    max_contributors: int
    replica_share: float  # replicas' work over ``work`` (0 without replication)


@dataclass(frozen=True)
class Throughput:
    """Work per agent per second, measured or assumed."""

    rate: float
    measured: bool

    @property
    def overhead(self) -> float:
        return 0.0 if self.measured else ASSUMED_OVERHEAD_SECONDS


def training_seconds(work: Workload, agents: int, speed: Throughput) -> float | None:
    """Seconds to train ``work`` with ``agents`` online at ``speed``; None with no agent."""
    if agents <= 0 or work.rounds <= 0 or speed.rate <= 0:
        return None
    task = speed.overhead + work.work / (work.rounds * work.task_size) / speed.rate
    parallel = max(1, min(agents, work.max_contributors, work.task_size))
    waves = math.ceil(work.task_size / parallel)
    return work.rounds * waves * task * (1.0 + work.replica_share)


def summary(seconds: float | None, volunteers: int, agents: int, speed: Throughput) -> str:
    """The estimate in words, or why there is none."""
    if volunteers <= 0 or agents <= 0:
        return NO_VOLUNTEERS
    if seconds is None:
        return "cannot estimate time until the model and data are uploaded"
    basis = "measured on recent tasks" if speed.measured else "assumed: nothing measured yet"
    people = f"{volunteers} volunteer{'s' * (volunteers != 1)}"
    machines = f"{agents} agent{'s' * (agents != 1)}"
    return (
        f"about {duration_text(seconds)} with the {people} online now ({machines}, "
        f"{speed.rate:,.0f} sample-epoch-parameters per agent per second, {basis})"
    )
