"""The agent's side of training: a warm child process it can prepare, use and kill at once.

The child (``training_child``) imports Keras -- the agent itself never does -- and keeps the
model loaded between tasks. ``start()`` launches it without waiting: it imports and warms up
TensorFlow in the background and says ``ready`` (``poll()`` notices), so the first task does
not pay for the import. The agent asks it to ``prepare`` a model as soon as the file is at
hand, so loading and tracing overlap the shard downloads. It watches the child's memory: over
the volunteer's cap the task is stopped (``resource_limit``); grown well past its size after
the first task (Keras can leak across ``fit`` calls), the child is replaced between tasks;
and it is replaced every ``max_tasks`` tasks regardless. A replacement starts (and warms up)
as soon as the old child goes, not when the next task arrives.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from multiprocessing.connection import Connection
from typing import Any

from daig.sandbox import SandboxedChild, start_sandboxed
from provider_agent.suspend import Suspender
from provider_agent.training_child import child_main

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainJob:
    model_path: str
    model_sha256: str
    weights_path: str
    weight_schema: list[list[Any]]
    x_path: str
    y_path: str
    epochs: int
    batch_size: int
    validation_split: float
    delta_path: str
    delta_codec: str = "fp32"
    seed: int | None = None  # daig.planning.task_seed: every provider trains the task alike


@dataclass(frozen=True)
class TrainOutcome:
    ok: bool
    history: dict[str, list[float | None]]
    samples: int
    fit_seconds: float
    error: str | None = None  # sanitized (daig.failures): sent to the requestor
    traceback: str | None = None  # the full one, for the volunteer's log only
    resource_limit: bool = False  # stopped for exceeding the volunteer's limits
    encode_seconds: float = 0.0
    # Where the rest went: waiting for TensorFlow to start (wait_ready), loading and tracing a
    # new model (load, trace), weights and rows read in (setup). Seconds, sent with the result.
    timings: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class RowsLike:
    """The dtypes and row shapes of a task's data and labels, to trace a model's step for."""

    x_dtype: str
    x_row_shape: list[int]
    y_dtype: str
    y_row_shape: list[int]
    validation: bool


def resident_mb(pid: int) -> float | None:
    """Resident memory of a process in MB (Linux /proc), None where unknown."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _thread_env(threads: int | None) -> dict[str, str]:
    if not threads:
        return {}
    value = str(threads)
    return {
        "OMP_NUM_THREADS": value,
        "OPENBLAS_NUM_THREADS": value,
        "MKL_NUM_THREADS": value,
        "TF_NUM_INTRAOP_THREADS": value,
        "TF_NUM_INTEROP_THREADS": value,
    }


class TrainingCancelled(Exception):
    """The job was stopped before it finished."""


class Trainer:
    """A warm child process that runs ``TrainJob``s."""

    def __init__(
        self,
        *,
        threads: int | None = None,
        memory_mb: int | None = None,
        max_tasks: int = 50,
        growth_mb: float = 300.0,
    ) -> None:
        self._threads = threads
        self._memory_mb = memory_mb
        self._max_tasks = max_tasks
        self._growth_mb = growth_mb
        self._baseline_mb: float | None = None
        self.recycled = 0  # children replaced because they grew
        self._process: SandboxedChild | None = None
        self._pipe: Connection | None = None
        self._jobs = 0
        self._ready = False
        self._started_at = 0.0
        self._ready_at = 0.0
        # The current child's start-up: TensorFlow import, warm-up, and start to ready (s).
        self.startup: dict[str, float] = {}
        # Why the last child ended before it was ready (then nothing restarts it until a task).
        self.startup_error: str | None = None

    @property
    def state(self) -> str:
        """``stopped``, ``starting`` (TensorFlow importing, warming up) or ``ready``."""
        if self._process is None:
            return "stopped"
        return "ready" if self._ready else "starting"

    def start(self) -> None:
        """Start a training process unless one runs; it imports and warms up TensorFlow in the
        background (returns at once; ``poll()`` tells when it is ready)."""
        self._ensure_started()

    def poll(self) -> str:
        """Notice a starting child's ``ready``, or that it died or outgrew the memory cap while
        starting; returns ``state``. Call between tasks only (a task reads the pipe itself)."""
        if self._process is None or self._ready:
            return self.state
        assert self._pipe is not None
        try:
            if self._pipe.poll(0):
                self._take(self._pipe.recv())
                return self.state
        except (EOFError, OSError):
            pass
        if not self._process.is_alive():
            self._fail_start(f"it exited with code {self._process.exitcode}")
        elif self._over_memory():
            self._fail_start(f"it needed more than the {self._memory_mb} MB this volunteer allows")
        return self.state

    def _fail_start(self, why: str) -> None:
        self.startup_error = f"the training process could not start TensorFlow: {why}"
        log.warning("%s", self.startup_error)
        self.close()

    def _take(self, reply: dict[str, Any]) -> None:
        """Record a ``ready`` message (the only one a child sends unasked)."""
        self._ready, self._ready_at, self.startup_error = True, time.monotonic(), None
        self.startup = {
            "import": float(reply.get("import_seconds", 0.0)),
            "warmup": float(reply.get("warmup_seconds", 0.0)),
            "start_to_ready": self._ready_at - self._started_at,
        }
        if reply.get("warmup_error"):
            log.warning("training process warm-up failed: %s", reply["warmup_error"])
        log.info(
            "training process %s ready in %.1f s (TensorFlow import %.1f s, warm-up %.1f s)",
            self.child_pid(),
            self.startup["start_to_ready"],
            self.startup["import"],
            self.startup["warmup"],
        )

    def _ensure_started(self) -> Connection:
        if self._process is not None and self._process.is_alive() and self._jobs < self._max_tasks:
            assert self._pipe is not None
            return self._pipe
        self.close()
        # The child gets no credentials: the volunteer's password, tokens and any DAIG_* or
        # cloud settings stay in this process. Its thread caps are in its environment from its
        # first instruction, before numpy or TensorFlow read them.
        self._process = start_sandboxed(
            child_main,
            self._threads,
            self._memory_mb,
            name="daig-trainer",
            extra_env=_thread_env(self._threads),
        )
        pipe = self._process.connection
        self._pipe, self._jobs = pipe, 0
        self._ready, self._started_at = False, time.monotonic()
        return pipe

    def run(
        self,
        job: TrainJob,
        *,
        wait: Callable[[float], None],
        should_stop: Callable[[], bool],
        on_progress: Callable[[float], None] | None = None,
        suspender: Suspender | None = None,
    ) -> TrainOutcome:
        """Run ``job``; ``wait(seconds)`` is called while it trains (e.g. to pump the broker).

        Raises ``TrainingCancelled`` (after killing the child) when ``should_stop()`` is true.
        A ``suspender`` stops and continues the child meanwhile (``wait`` is still called, so
        the lease is renewed); it raises ``SuspendedTooLong`` past its limit (child killed).
        """
        self._ensure_started()
        ready_before = self.poll() == "ready"
        pipe = self._ensure_started()  # again if it had just died while starting
        sent = time.monotonic()
        pipe.send({"op": "train"} | asdict(job))
        self._jobs += 1
        if suspender is not None:
            suspender.begin(self.child_pid())
        try:
            outcome = self._await_reply(pipe, wait, should_stop, on_progress, suspender)
        except BaseException:
            if suspender is not None:
                suspender.forget()  # SIGKILL ends a stopped child too; no SIGCONT needed
            self.close()  # whatever interrupted us, the child must not keep training
            raise
        if suspender is not None and suspender.suspended_seconds:
            # The child's clock ran while it was stopped: that time was not contributed.
            paused = suspender.suspended_seconds
            outcome = replace(outcome, fit_seconds=max(0.0, outcome.fit_seconds - paused))
            outcome.timings["suspended"] = paused
        if not ready_before and self._ready:
            outcome.timings["wait_ready"] = max(0.0, self._ready_at - sent)
        self._replace_if_due()
        return outcome

    def prepare(self, model_path: str, model_sha256: str, rows: RowsLike | None = None) -> None:
        """Have the child load this model now (and trace its training step for ``rows``),
        while the agent fetches the rest."""
        message: dict[str, Any] = {
            "op": "prepare",
            "model_path": model_path,
            "model_sha256": model_sha256,
        }
        if rows is not None:
            message["trace"] = asdict(rows)
        self._ensure_started().send(message)

    def limits(self, timeout: float = 300.0) -> dict[str, Any]:
        """The thread counts TensorFlow reports and the heap limit, as seen in the child."""
        pipe = self._ensure_started()
        pipe.send({"op": "limits"})
        deadline = time.monotonic() + timeout
        while pipe.poll(max(0.0, deadline - time.monotonic())):
            reply = dict(pipe.recv())
            if reply.pop("type", None) == "ready":
                self._take(reply)
                continue
            return reply
        raise TimeoutError("the training process did not answer")

    def _replace_if_due(self) -> None:
        """After a task: replace the child if it grew or did its ``max_tasks``; the new one
        warms up while the agent waits for the next task."""
        if self._process is None:
            return  # it died or was stopped: the agent decides when to start another
        pid = self.child_pid()
        rss = resident_mb(pid) if pid else None
        grown = False
        if rss is not None and self._baseline_mb is None:
            self._baseline_mb = rss
        elif rss is not None and self._baseline_mb is not None:
            grown = rss > self._baseline_mb + self._growth_mb
            if grown:
                log.info(
                    "training process grew from %.0f to %.0f MB: replacing it",
                    self._baseline_mb,
                    rss,
                )
                self.recycled += 1
        if grown or self._jobs >= self._max_tasks:
            self.close()
            self.start()

    def _await_reply(
        self,
        pipe: Connection,
        wait: Callable[[float], None],
        should_stop: Callable[[], bool],
        on_progress: Callable[[float], None] | None,
        suspender: Suspender | None = None,
    ) -> TrainOutcome:
        while True:
            if should_stop():
                raise TrainingCancelled()
            alive = self._process is not None and self._process.is_alive()
            if suspender is not None and suspender.hold() and alive:
                wait(0.5)  # stopped: only the broker and the lease need us
                continue
            if pipe.poll(0):
                try:
                    reply = pipe.recv()
                except EOFError:
                    self.close()
                    return TrainOutcome(
                        False, {}, 0, 0.0, "the training process died (out of memory?)"
                    )
                if reply["type"] == "ready":
                    self._take(reply)
                    continue
                if reply["type"] == "progress":
                    if on_progress:
                        on_progress(float(reply["fraction"]))
                    continue
                return TrainOutcome(
                    ok=reply["type"] == "done",
                    history=reply.get("history", {}),
                    samples=int(reply.get("samples", 0)),
                    fit_seconds=float(reply.get("fit_seconds", 0.0)),
                    encode_seconds=float(reply.get("encode_seconds", 0.0)),
                    error=reply.get("error"),
                    traceback=reply.get("traceback"),
                    resource_limit=bool(reply.get("resource_limit", False)),
                    timings=dict(reply.get("timings", {})),
                )
            if self._over_memory():
                assert self._memory_mb is not None
                self.close()
                return TrainOutcome(
                    False,
                    {},
                    0,
                    0.0,
                    f"the task needed more than the {self._memory_mb} MB of memory this volunteer "
                    "allows",
                    resource_limit=True,
                )
            if self._process is not None and not self._process.is_alive():
                code = self._process.exitcode
                self.close()
                return TrainOutcome(False, {}, 0, 0.0, f"the training process died (exit {code})")
            # Service the broker and the lease, then sleep until the child speaks (at most
            # 0.1 s): a fixed 0.1 s sleep delayed every result by 50 ms on average.
            wait(0.0)
            pipe.poll(0.1)

    def child_pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def _over_memory(self) -> bool:
        if not self._memory_mb or self._process is None:
            return False
        rss = resident_mb(self._process.pid)
        return rss is not None and rss > self._memory_mb

    def close(self) -> None:
        """Kill the child at once (mid-import or mid-task alike)."""
        if self._process is not None:
            self._process.close()  # killed, reaped, its pipe closed
        self._process, self._pipe = None, None
        self._baseline_mb = None
        self._ready = False
