"""The training child process: the only place on a volunteer's machine where Keras runs.

It starts as soon as the agent does: it imports TensorFlow, warms it up (``warmup.py``) and
says ``ready`` (with how long that took) before any task arrives. Then it answers one message
at a time from the agent over a pipe: ``prepare`` loads a model ahead of its first task and
traces its training step (while the agent still downloads the shard), ``train`` runs one task
and replies with progress messages and a final ``done`` or ``error``. The model stays loaded
between tasks of the same model file; each task starts from the global weights with the
optimizer reset to its just-compiled state (no recompilation, so no retracing and no memory
growth from it).
"""

from __future__ import annotations

import contextlib
import signal
import sys
import time
import traceback
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from daig.failures import describe_failure
from provider_agent.determinism import enable_op_determinism, seed_task
from provider_agent.warmup import TraceSpec, build_state, trace_training, warm_up

MAX_TRACEBACK_CHARS = 20_000


def child_main(pipe: Connection, threads: int | None, memory_mb: int | None = None) -> None:
    """Import and warm up TensorFlow within the volunteer's limits, say ``ready``, then serve."""
    began = time.perf_counter()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the agent decides when training stops
    # Keras imports scikit-learn (and SciPy) at start-up only for its optional scikit-learn
    # wrappers, which training never uses: blocked, the import takes ~2 s less CPU (of 9-12)
    # and the process 60 MB less memory.
    sys.modules.setdefault("sklearn", None)  # type: ignore[arg-type]
    from daig.logs import quiet_tensorflow

    quiet_tensorflow()
    import tensorflow as tf

    imported = time.perf_counter()
    enable_op_determinism(tf)
    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    limit_memory(memory_mb)
    # A task that arrived during the import pays the first fit's set-up itself, sooner than
    # after a throwaway fit (which, under CPU contention, took 6 s of a 48 s start).
    warm = {"warmup_seconds": 0.0} if pipe.poll(0) else warm_up()
    pipe.send({"type": "ready", "import_seconds": imported - began} | warm)
    worker = ChildWorker(pipe)
    while True:
        try:
            message = pipe.recv()
        except (EOFError, KeyboardInterrupt):
            return
        op = message.pop("op", "train")
        try:
            if op == "prepare":
                trace = message.get("trace")
                worker.prepare(
                    message["model_path"],
                    message["model_sha256"],
                    TraceSpec.from_message(trace) if trace else None,
                )
                continue
            if op == "limits":
                pipe.send(limits_in_force(tf))
                continue
            pipe.send(worker.train(message))
        except Exception as exc:  # report, don't die: the agent publishes the failure
            if op == "train":
                pipe.send(
                    {
                        "type": "error",
                        # Sent on to the requestor: type and message only, nothing of this
                        # machine. The traceback is for the volunteer's own log.
                        "error": describe_failure(exc),
                        "traceback": traceback.format_exc()[-MAX_TRACEBACK_CHARS:],
                        # Out of memory under the volunteer's cap: their limit, not the model.
                        "resource_limit": bool(memory_mb) and _out_of_memory(exc),
                    }
                )


def limit_memory(memory_mb: int | None) -> None:
    """Cap the heap (RLIMIT_DATA) at the volunteer's limit: allocations beyond it fail.

    Set after TensorFlow's import, which needs what it needs (the agent's resident-memory
    watch covers that). Not RLIMIT_AS: TensorFlow reserves far more address space than it
    uses (about 1.6 GB of virtual memory for 0.7 GB resident after the import alone).
    """
    if not memory_mb:
        return
    import resource

    limit = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))


def limits_in_force(tf: Any) -> dict[str, Any]:
    """What this process is really held to, for the agent's status and for tests."""
    import resource

    data_limit = resource.getrlimit(resource.RLIMIT_DATA)[0]
    return {
        "type": "limits",
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        "data_limit_bytes": None if data_limit == resource.RLIM_INFINITY else data_limit,
    }


def _out_of_memory(exc: Exception) -> bool:
    return isinstance(exc, MemoryError) or type(exc).__name__ == "ResourceExhaustedError"


class ChildWorker:
    def __init__(self, pipe: Connection) -> None:
        self._pipe = pipe
        self._model: Any = None
        self._model_sha: str | None = None
        self._optimizer: Any = None
        self._traced: set[TraceSpec] = set()
        # Seconds spent loading and tracing for the next task, reported with its result.
        self._timings: dict[str, float] = {}

    def prepare(self, model_path: str, model_sha256: str, trace: TraceSpec | None = None) -> Any:
        """Load (checked, safe_mode) and compile the model unless it is already loaded; with
        ``trace``, also trace its training step for rows like that unless already done."""
        import keras

        from daig.modelfile.keras_load import FreshOptimizer, load_model

        if self._model_sha != model_sha256:
            began = time.perf_counter()
            if self._model is not None:  # forget the old model (a gc pass: 0.3-0.7 s here)
                self._model = self._model_sha = self._optimizer = None
                self._traced.clear()
                keras.backend.clear_session()
            model, _ = load_model(Path(model_path))
            self._optimizer = FreshOptimizer(model)
            self._model, self._model_sha = model, model_sha256
            self._timings["load"] = time.perf_counter() - began
        if trace is not None and trace not in self._traced:
            self._traced.add(trace)  # a failed trace is not tried again: fit reports the error
            with contextlib.suppress(Exception):  # the task's own fit fails with the real error
                self._timings["trace"] = trace_training(self._model, trace)
        return self._model

    def train(self, job: dict[str, Any]) -> dict[str, Any]:
        import keras
        import numpy as np

        from daig.modelfile.keras_load import canonical_weights
        from daig.weights.schema import WeightSchema
        from daig.weights.stream import load_weights, save_weights

        model = self.prepare(job["model_path"], job["model_sha256"])
        setup_began = time.perf_counter()
        schema = WeightSchema.from_json(job["weight_schema"])
        start = load_weights(Path(job["weights_path"]), schema)
        variables = canonical_weights(model)
        schema.check([np.zeros(v.shape, dtype=v.dtype) for v in variables])
        for variable, value in zip(variables, start, strict=True):
            variable.assign(value)
        self._optimizer.reset()  # as if the model file had just been loaded
        if job.get("seed") is not None:
            seed_task(model, int(job["seed"]))
        x = np.load(job["x_path"], allow_pickle=False)
        y = np.load(job["y_path"], allow_pickle=False)
        build_state(model, x, y)  # when not prepared and traced already
        pipe, epochs = self._pipe, job["epochs"]

        class _Progress(keras.callbacks.Callback):
            def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
                pipe.send({"type": "progress", "fraction": (epoch + 1) / epochs})

        began = time.perf_counter()
        timings, self._timings = self._timings | {"setup": began - setup_began}, {}
        history = model.fit(
            x,
            y,
            epochs=epochs,
            batch_size=job["batch_size"],
            validation_split=job["validation_split"],
            verbose=0,
            callbacks=[_Progress()],
        )
        fit_seconds = time.perf_counter() - began
        delta = [
            (np.asarray(v.numpy(), dtype=np.float64) - w).astype(w.dtype)
            for v, w in zip(variables, start, strict=True)
        ]
        save_weights(Path(job["delta_path"]), delta, codec=job.get("delta_codec", "fp32"))
        return {
            "type": "done",
            "history": {k: [float(v) for v in values] for k, values in history.history.items()},
            "samples": int(len(x)),
            "fit_seconds": fit_seconds,
            "encode_seconds": time.perf_counter() - began - fit_seconds,
            "timings": timings,  # load and trace when this task brought a new model; setup
        }
