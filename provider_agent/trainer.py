"""The agent's side of training: a warm child process it can prepare, use and kill at once.

The child (``training_child``) imports Keras -- the agent itself never does -- and keeps the
model loaded between tasks. The agent asks it to ``prepare`` a model as soon as the file is
at hand, so loading overlaps the shard downloads. It watches the child's memory: over the
volunteer's cap the task is stopped (``resource_limit``); grown well past its size after the
first task (Keras can leak across ``fit`` calls), the child is replaced between tasks; and
it is replaced every ``max_tasks`` tasks regardless.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection
from typing import Any

from daig.process import sandbox_environment
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


@dataclass(frozen=True)
class TrainOutcome:
    ok: bool
    history: dict[str, list[float | None]]
    samples: int
    fit_seconds: float
    error: str | None = None
    resource_limit: bool = False  # stopped for exceeding the volunteer's limits
    encode_seconds: float = 0.0


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
        self._process: multiprocessing.process.BaseProcess | None = None
        self._pipe: Connection | None = None
        self._jobs = 0

    def _ensure_started(self) -> Connection:
        if self._process is not None and self._process.is_alive() and self._jobs < self._max_tasks:
            assert self._pipe is not None
            return self._pipe
        self.close()
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe()
        self._process = context.Process(
            target=child_main,
            args=(child, self._threads, self._memory_mb),
            name="daig-trainer",
            daemon=True,
        )
        # The child gets no credentials: the volunteer's password, tokens and any DAIG_* or
        # cloud settings stay in this process (spawn copies the environment, not memory).
        saved = dict(os.environ)
        os.environ.clear()
        os.environ.update(sandbox_environment(**_thread_env(self._threads)))
        try:
            self._process.start()
        finally:
            os.environ.clear()
            os.environ.update(saved)
        child.close()
        self._pipe, self._jobs = parent, 0
        return parent

    def run(
        self,
        job: TrainJob,
        *,
        wait: Callable[[float], None],
        should_stop: Callable[[], bool],
        on_progress: Callable[[float], None] | None = None,
    ) -> TrainOutcome:
        """Run ``job``; ``wait(seconds)`` is called while it trains (e.g. to pump the broker).

        Raises ``TrainingCancelled`` (after killing the child) when ``should_stop()`` is true.
        """
        pipe = self._ensure_started()
        pipe.send({"op": "train"} | asdict(job))
        self._jobs += 1
        try:
            outcome = self._await_reply(pipe, wait, should_stop, on_progress)
        except BaseException:
            self.close()  # whatever interrupted us, the child must not keep training
            raise
        self._recycle_if_grown()
        return outcome

    def prepare(self, model_path: str, model_sha256: str) -> None:
        """Have the child load this model now, while the agent fetches the rest."""
        self._ensure_started().send(
            {"op": "prepare", "model_path": model_path, "model_sha256": model_sha256}
        )

    def limits(self, timeout: float = 300.0) -> dict[str, Any]:
        """The thread counts TensorFlow reports and the heap limit, as seen in the child."""
        pipe = self._ensure_started()
        pipe.send({"op": "limits"})
        if not pipe.poll(timeout):
            raise TimeoutError("the training process did not answer")
        reply = dict(pipe.recv())
        reply.pop("type", None)
        return reply

    def _recycle_if_grown(self) -> None:
        pid = self.child_pid()
        rss = resident_mb(pid) if pid else None
        if rss is None:
            return
        if self._baseline_mb is None:
            self._baseline_mb = rss
        elif rss > self._baseline_mb + self._growth_mb:
            log.info(
                "training process grew from %.0f to %.0f MB: replacing it", self._baseline_mb, rss
            )
            self.recycled += 1
            self.close()

    def _await_reply(
        self,
        pipe: Connection,
        wait: Callable[[float], None],
        should_stop: Callable[[], bool],
        on_progress: Callable[[float], None] | None,
    ) -> TrainOutcome:
        while True:
            if should_stop():
                raise TrainingCancelled()
            if pipe.poll(0):
                try:
                    reply = pipe.recv()
                except EOFError:
                    self.close()
                    return TrainOutcome(
                        False, {}, 0, 0.0, "the training process died (out of memory?)"
                    )
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
                    resource_limit=bool(reply.get("resource_limit", False)),
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
        if not self._memory_mb or self._process is None or self._process.pid is None:
            return False
        rss = resident_mb(self._process.pid)
        return rss is not None and rss > self._memory_mb

    def close(self) -> None:
        if self._process is not None:
            if self._process.is_alive():
                self._process.kill()
            self._process.join(timeout=5)
        if self._pipe is not None:
            self._pipe.close()
        self._process, self._pipe = None, None
        self._baseline_mb = None
