"""What a provider agent reports about itself: its state for the CLI and the GUI, and the
seconds each phase of a task took (sent with the result)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

STARTING_TENSORFLOW = "starting TensorFlow"  # the training process imports and warms up
WAITING = "waiting for tasks"


@dataclass
class AgentStatus:
    """What the agent is doing, for the CLI and the GUI."""

    state: str = "starting"
    project_id: str | None = None
    task_id: str | None = None
    round: int | None = None
    progress: float = 0.0
    tasks_done: int = 0
    seconds_contributed: float = 0.0
    last_error: str | None = None
    # Every polite-volunteering setting and what the machine says now (politeness.py).
    limits: dict[str, str] = field(default_factory=dict)
    paused_because: str | None = None  # why no work is taken now, if so


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
