"""Training in a child process, so the agent stays responsive and a task can be killed at once.

The child imports Keras (the agent itself never does), keeps the loaded model between tasks
of the same project, and answers one job at a time over a pipe with progress messages and a
final ``done`` or ``error``. The agent restarts it after ``max_tasks`` jobs, because Keras
leaks memory when ``fit`` is called in a loop.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from daig.process import sandbox_environment

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


@dataclass(frozen=True)
class TrainOutcome:
    ok: bool
    history: dict[str, list[float | None]]
    samples: int
    fit_seconds: float
    error: str | None = None
    resource_limit: bool = False  # stopped for exceeding the volunteer's limits


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
        self, *, threads: int | None = None, memory_mb: int | None = None, max_tasks: int = 50
    ) -> None:
        self._threads = threads
        self._memory_mb = memory_mb
        self._max_tasks = max_tasks
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
            target=_child_main, args=(child, self._threads), name="daig-trainer", daemon=True
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
        pipe.send(asdict(job))
        self._jobs += 1
        try:
            return self._await_reply(pipe, wait, should_stop, on_progress)
        except BaseException:
            self.close()  # whatever interrupted us, the child must not keep training
            raise

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
                    error=reply.get("error"),
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
            wait(0.1)

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


# --- the child process ------------------------------------------------------------------------


def _child_main(pipe: Connection, threads: int | None) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the agent decides when training stops
    from daig.logs import quiet_tensorflow

    quiet_tensorflow()
    import tensorflow as tf

    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    worker = _ChildWorker(pipe)
    while True:
        try:
            job = pipe.recv()
        except (EOFError, KeyboardInterrupt):
            return
        try:
            pipe.send(worker.run(TrainJob(**job)))
        except Exception as exc:  # report, don't die: the agent publishes the failure
            pipe.send({"type": "error", "error": f"{type(exc).__name__}: {exc}"[:2000]})


class _ChildWorker:
    def __init__(self, pipe: Connection) -> None:
        self._pipe = pipe
        self._model: Any = None
        self._model_sha: str | None = None
        self._training_config: dict[str, Any] = {}

    def _model_for(self, job: TrainJob) -> Any:
        import keras

        from daig.modelfile.keras_load import load_model

        if self._model_sha != job.model_sha256:
            keras.backend.clear_session()
            self._model, info = load_model(Path(job.model_path))
            self._training_config = info.training_config
            self._model_sha = job.model_sha256
        return self._model

    def run(self, job: TrainJob) -> dict[str, Any]:
        import keras
        import numpy as np

        from daig.modelfile.keras_load import canonical_weights, compile_arguments
        from daig.weights.codec import load_weights, save_weights
        from daig.weights.schema import WeightSchema

        model = self._model_for(job)
        schema = WeightSchema.from_json(job.weight_schema)
        start = load_weights(Path(job.weights_path), schema)
        variables = canonical_weights(model)
        schema.check([np.zeros(v.shape, dtype=v.dtype) for v in variables])
        for variable, value in zip(variables, start, strict=True):
            variable.assign(value)
        # A fresh optimizer per task, as if the model file had just been loaded.
        model.compile(**compile_arguments(self._training_config))
        x = np.load(job.x_path, allow_pickle=False)
        y = np.load(job.y_path, allow_pickle=False)
        pipe = self._pipe

        class _Progress(keras.callbacks.Callback):
            def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
                pipe.send({"type": "progress", "fraction": (epoch + 1) / job.epochs})

        began = time.perf_counter()
        history = model.fit(
            x,
            y,
            epochs=job.epochs,
            batch_size=job.batch_size,
            validation_split=job.validation_split,
            verbose=0,
            callbacks=[_Progress()],
        )
        fit_seconds = time.perf_counter() - began
        delta = [
            (np.asarray(v.numpy(), dtype=np.float64) - w).astype(w.dtype)
            for v, w in zip(variables, start, strict=True)
        ]
        save_weights(Path(job.delta_path), delta)
        return {
            "type": "done",
            "history": {k: [float(x) for x in v] for k, v in history.history.items()},
            "samples": int(len(x)),
            "fit_seconds": fit_seconds,
        }
