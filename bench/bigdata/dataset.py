"""The load generator of ``bench.big_data``: a dataset of several GB, written without holding it.

Rows are standard normal float32 features, labels a fixed random linear rule (learnable), both
written as ``.npy`` chunk by chunk, never more than ``CHUNK_ROWS`` rows in memory; the MLP
(features-64-10) is saved as ``.h5`` by a spawned process, so the caller never imports
TensorFlow. ``in_spawned_process`` runs any such function in a fresh interpreter.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.lib import format as npformat

CLASSES = 10
HIDDEN = 64
CHUNK_ROWS = 4096


@dataclass(frozen=True)
class Dataset:
    model: Path
    data: Path
    labels: Path
    validation_data: Path
    validation_labels: Path
    rows: int
    features: int
    seconds: float  # to generate data and labels

    def files(self) -> dict[str, Path]:
        return {
            "model": self.model,
            "data": self.data,
            "labels": self.labels,
            "validation_data": self.validation_data,
            "validation_labels": self.validation_labels,
        }


def _write_npy(path: Path, dtype: np.dtype[Any], shape: tuple[int, ...]) -> Any:
    """Open ``path`` and write an ``.npy`` header for ``shape``; the caller appends the rows."""
    out = open(path, "wb")  # noqa: SIM115 - closed by the caller
    header = {
        "descr": npformat.dtype_to_descr(dtype),
        "fortran_order": False,
        "shape": shape,
    }
    npformat.write_array_header_1_0(out, header)
    return out


def _rows(rows: int, features: int, weights: np.ndarray, seed: int) -> Iterator[tuple[Any, Any]]:
    """Chunks of (x, y): x standard normal, y = argmax(x @ weights) -- a learnable rule."""
    rng = np.random.default_rng(seed)
    for start in range(0, rows, CHUNK_ROWS):
        count = min(CHUNK_ROWS, rows - start)
        x = rng.standard_normal((count, features), dtype=np.float32)
        yield x, np.argmax(x @ weights, axis=1).astype(np.int64)


def _write_arrays(data: Path, labels: Path, rows: int, features: int, seed: int) -> None:
    weights = np.random.default_rng(12345).standard_normal((features, CLASSES)).astype(np.float32)
    with (
        _write_npy(data, np.dtype(np.float32), (rows, features)) as xs,
        _write_npy(labels, np.dtype(np.int64), (rows,)) as ys,
    ):
        for x, y in _rows(rows, features, weights, seed):
            x.tofile(xs)
            y.tofile(ys)


def _write_model(path: str, features: int) -> None:
    """Runs in a spawned process, so the benchmark itself never imports TensorFlow."""
    from daig.logs import quiet_tensorflow

    quiet_tensorflow()
    import keras

    model = keras.Sequential(
        [
            keras.Input(shape=(features,)),
            keras.layers.Dense(HIDDEN, activation="relu"),
            keras.layers.Dense(CLASSES, activation="softmax"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=0.001),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    model.save(path)


def generate(directory: Path, rows: int, features: int, validation_rows: int) -> Dataset:
    """Write the dataset chunk by chunk (never more than ``CHUNK_ROWS`` rows in memory)."""
    directory.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    files = {k: directory / f"{k}.npy" for k in ("x", "y", "val-x", "val-y")}
    _write_arrays(files["x"], files["y"], rows, features, seed=1)
    seconds = time.perf_counter() - began
    _write_arrays(files["val-x"], files["val-y"], validation_rows, features, seed=2)
    model = directory / f"mlp-{features}-{HIDDEN}-{CLASSES}.h5"
    in_spawned_process(_write_model, str(model), features)
    return Dataset(
        model, files["x"], files["y"], files["val-x"], files["val-y"], rows, features, seconds
    )


def in_spawned_process(target: Any, *args: Any) -> Any:
    """Run ``target(*args, pipe)`` or ``target(*args)`` in a fresh interpreter; its reply."""
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    process = context.Process(target=_call_and_reply, args=(target, args, child))
    process.start()
    child.close()
    try:
        reply = parent.recv()
    except EOFError as exc:
        raise RuntimeError(f"{target.__name__} died (exit {process.exitcode})") from exc
    finally:
        process.join()
    if isinstance(reply, BaseException):
        raise reply
    return reply


def _call_and_reply(target: Any, args: tuple[Any, ...], pipe: Any) -> None:
    try:
        pipe.send(target(*args))
    except BaseException as exc:
        pipe.send(RuntimeError(f"{type(exc).__name__}: {exc}"))
