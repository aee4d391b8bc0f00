"""What the load generator saw, per measured window (a step minus its warm-up).

Events (a claim answered, a result confirmed) count in the window open when they happen;
during a warm-up they go to a scratch window that is never reported. A provider's time is
kept as intervals per state, each clipped to the windows it overlaps, so a step's busy share
is exact even for tasks that straddle its edges. The generator's own CPU is the process's
CPU time between a window's edges (the sampler runs in another process).
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

# A provider is always in exactly one of these.
STATES = ("waiting", "claiming", "fitting", "sending", "pausing")
# "Working on a task": fitting, then uploading and publishing its result.
BUSY_STATES = ("fitting", "sending")


@dataclass
class Window:
    """One step's measured window and the generator's observations in it."""

    providers: int
    start: float = field(default_factory=time.monotonic)
    start_wall: datetime = field(default_factory=lambda: datetime.now(UTC))
    cpu_start: float = field(default_factory=time.process_time)
    end: float = math.inf
    end_wall: datetime | None = None
    cpu_end: float | None = None
    deliveries: int = 0
    claims_ok: int = 0
    claim_latency: list[float] = field(default_factory=list)  # every answered claim
    refusals: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    published: int = 0
    publish_latency: list[float] = field(default_factory=list)  # publish -> confirm
    uploads: int = 0
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STATES, 0.0))
    loop_lag: list[float] = field(default_factory=list)

    @property
    def duration(self) -> float:
        return (self.end if self.end < math.inf else time.monotonic()) - self.start

    @property
    def generator_cpu(self) -> float:
        """CPU seconds this process spent in the window."""
        return (self.cpu_end if self.cpu_end is not None else time.process_time()) - self.cpu_start


class Recorder:
    """The windows of a run, the one events go to now, and when each result was confirmed."""

    def __init__(self) -> None:
        self.windows: list[Window] = []
        self.active = Window(providers=0)  # scratch until the first window opens
        self.gaps = [self.active]  # the scratch windows (warm-ups), for whole-run totals
        self.published_at: dict[str, float] = {}  # claim id -> wall time of the confirm

    def open(self, providers: int) -> Window:
        window = Window(providers=providers)
        self.windows.append(window)
        self.active = window
        return window

    def close(self) -> None:
        window = self.active
        window.end, window.end_wall = time.monotonic(), datetime.now(UTC)
        window.cpu_end = time.process_time()
        self.active = Window(providers=0)
        self.gaps.append(self.active)

    def total(self, name: str) -> int:
        """A count (``claims_ok``, ``published``...) over the whole run, warm-ups included."""
        return sum(getattr(window, name) for window in self.windows + self.gaps)

    def spent(self, state: str, began: float, ended: float) -> None:
        """A provider was in ``state`` from ``began`` to ``ended`` (monotonic seconds)."""
        for window in reversed(self.windows):
            if window.end <= began:
                break  # and every earlier window ended earlier still
            overlap = min(ended, window.end) - max(began, window.start)
            if overlap > 0:
                window.seconds[state] += overlap
