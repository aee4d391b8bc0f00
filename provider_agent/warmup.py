"""Paying TensorFlow's one-time costs before a task needs them (runs in the training child).

A fresh training process pays, before its first task can fit: the TensorFlow import (7-9 s
on the 2-core development machine, far more with several providers starting at once), the
first ``fit`` machinery (tf.data, callbacks, the optimizer's update ops: ``warm_up``), and
for every new model the tracing of its training step (about 1 s for the digits MLP:
``trace_training``). The child imports and warms up as soon as the agent starts, and traces a
task's model while the agent downloads the task's rows, so a first task pays only for what
depends on its own model.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

# Rows and batch size of the throwaway fits: two batch shapes (2 and 1), so that Keras traces
# the step for any batch size at once (``reduce_retracing``) instead of again for the last,
# smaller batch of the real task.
_ROWS, _BATCH = 3, 2


@dataclass(frozen=True)
class TraceSpec:
    """What a model's traced training step depends on besides the model: the rows' dtypes
    and shapes, and whether ``fit`` validates (a second traced function)."""

    x_dtype: str
    x_row_shape: tuple[int, ...]
    y_dtype: str
    y_row_shape: tuple[int, ...]
    validation: bool

    @classmethod
    def from_message(cls, message: dict[str, Any]) -> TraceSpec:
        return cls(
            x_dtype=str(message["x_dtype"]),
            x_row_shape=tuple(int(n) for n in message["x_row_shape"]),
            y_dtype=str(message["y_dtype"]),
            y_row_shape=tuple(int(n) for n in message["y_row_shape"]),
            validation=bool(message["validation"]),
        )


def warm_up() -> dict[str, Any]:
    """Fit a tiny throwaway model for two steps on zeros, then forget it.

    Returns the seconds it took, or the error (a warm-up that fails only costs the first task
    what it would have paid anyway; the task itself reports real errors).
    """
    began = time.perf_counter()
    try:
        import keras
        import numpy as np

        inputs = keras.Input((4,))
        model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(inputs))
        model.compile(
            optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"]
        )
        zeros = np.zeros((_ROWS, 4), dtype=np.float32), np.zeros(_ROWS, dtype=np.int64)
        build_state(model, *zeros)
        model.fit(*zeros, batch_size=_BATCH, epochs=1, verbose=0)
        del model
        keras.backend.clear_session()
        # What a first task imports besides Keras: model checks and loading, the weight codec.
        import daig.modelfile.keras_load
        import daig.weights.stream  # noqa: F401
    except Exception as exc:  # reported to the agent, never fatal
        return {"warmup_seconds": time.perf_counter() - began, "warmup_error": repr(exc)[:500]}
    return {"warmup_seconds": time.perf_counter() - began}


def build_state(model: Any, x: Any, y: Any) -> None:
    """Create the compiled metrics' and loss's variables before the training step is traced.

    Keras creates them lazily inside the first trace, which makes TensorFlow trace the step a
    second time (a function that created variables is traced again): about a third more CPU
    for the first ``fit`` of the digits MLP. ``_symbolic_build`` is what Keras itself runs
    first under a distribution strategy; it does nothing once everything is built.
    """
    build = getattr(model, "_symbolic_build", None)  # private: absent in another Keras, skip
    if build is not None:
        build(data_batch=(x[:_BATCH], y[:_BATCH]))


def trace_training(model: Any, spec: TraceSpec) -> float:
    """Trace ``model``'s training (and validation) step on zero rows shaped like the task's.

    Changes the model's weights and optimizer state: the task that follows assigns the
    global weights and resets the optimizer anyway. Returns the seconds it took.
    """
    import numpy as np

    began = time.perf_counter()
    x = np.zeros((_ROWS, *spec.x_row_shape), dtype=spec.x_dtype)
    y = np.zeros((_ROWS, *spec.y_row_shape), dtype=spec.y_dtype)
    build_state(model, x, y)
    model.fit(
        x,
        y,
        batch_size=_BATCH,
        epochs=1,
        validation_data=(x, y) if spec.validation else None,
        verbose=0,
    )
    return time.perf_counter() - began
