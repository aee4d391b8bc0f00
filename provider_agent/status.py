"""What a provider agent reports about itself: its state for the CLI and the GUI (the task's
project by name, its phase, the recent tasks, whether the server answers), and the seconds
each phase of a task took (sent with the result).

The agent's thread writes these fields and the GUI's timer reads them: each is replaced whole
(plain values, tuples), never mutated in place, so a reader sees one value or the other."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

from daig.contract.http import ClaimGrant

STARTING_TENSORFLOW = "starting TensorFlow"  # the training process imports and warms up
WAITING = "waiting for tasks"
# The phases of one task, in order (training is "training epoch i/n").
DOWNLOADING = "downloading rows"
UPLOADING = "uploading"
RECENT_TASKS = 50  # how many finished tasks the status keeps


def training_phase(epoch: int, epochs: int) -> str:
    return f"training epoch {epoch}/{epochs}"


@dataclass(frozen=True)
class TaskRecord:
    """One task this agent worked on, as the agent saw it (the server's verdict comes from
    ``GET /v1/provider/results``)."""

    task_id: str
    project_name: str
    owner_name: str
    round: int  # numbered from 0, as in grants
    shard: int
    started_at: float  # time.time()
    seconds: float = 0.0
    outcome: str = ""  # "" while it runs; then sent, failed: why, given back, abandoned


@dataclass(frozen=True)
class Outage:
    """The server (API or broker) does not answer; the next try is at ``retry_at``."""

    what: str  # "the DAIG server" or "the task broker"
    error: str
    retry_at: float  # time.time()

    def retry_in(self, now: float | None = None) -> int:
        """Whole seconds until the next try (at least 0)."""
        return max(0, round(self.retry_at - (time.time() if now is None else now)))

    def text(self, now: float | None = None) -> str:
        return f"{self.what} is unreachable; retrying in {self.retry_in(now)} s"


@dataclass
class AgentStatus:
    """What the agent is doing, for the CLI and the GUI."""

    state: str = "starting"
    project_id: str | None = None
    project_name: str | None = None
    owner_name: str | None = None
    task_id: str | None = None
    round: int | None = None
    shard: int | None = None
    progress: float = 0.0
    phase: str | None = None  # of the current task: DOWNLOADING, STARTING_TENSORFLOW, ...
    phases: tuple[str, ...] = ()  # every phase of the current (or last) task, in order
    recent: tuple[TaskRecord, ...] = ()  # newest first
    outage: Outage | None = None  # set while the server does not answer
    tasks_done: int = 0
    seconds_contributed: float = 0.0
    last_error: str | None = None
    # Every polite-volunteering setting and what the machine says now (politeness.py).
    limits: dict[str, str] = field(default_factory=dict)
    paused_because: str | None = None  # why no work is taken now, if so

    def set_phase(self, phase: str) -> None:
        if phase != self.phase:
            self.phase = phase
            self.phases = (*self.phases, phase)

    def claimed(self, grant: ClaimGrant) -> None:
        """The task of ``grant`` is ours: shown as training, first in ``recent``."""
        self.begin_task(
            TaskRecord(
                task_id=str(grant.task_id),
                project_name=grant.project_name or str(grant.project_id),
                owner_name=grant.owner_name,
                round=grant.round,
                shard=grant.shard,
                started_at=time.time(),
            )
        )
        self.project_id = str(grant.project_id)
        self.project_name = grant.project_name or None
        self.owner_name = grant.owner_name or None
        self.task_id = str(grant.task_id)
        self.round = grant.round
        self.shard = grant.shard
        self.progress = 0.0
        self.state = "training"

    def begin_task(self, record: TaskRecord) -> None:
        """A new task is ours: its record goes first in ``recent`` (outcome still empty)."""
        self.phase, self.phases = None, ()
        self.recent = (record, *self.recent)[:RECENT_TASKS]

    def end_task(self, task_id: str, outcome: str) -> None:
        """Record how the task ``task_id`` ended, and how long it took."""
        now = time.time()
        self.recent = tuple(
            replace(r, outcome=outcome, seconds=now - r.started_at)
            if r.task_id == task_id and not r.outcome
            else r
            for r in self.recent
        )
        self.phase = None


class Stopwatch:
    """Seconds spent per phase of a task, reported with the result."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        began = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - began
