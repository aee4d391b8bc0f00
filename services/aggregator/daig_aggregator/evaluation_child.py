"""The evaluation child process: where the aggregator's Keras runs, apart from the server.

The model file is the requestor's (checked against the allow-list, loaded with ``safe_mode``
by ``load_model``); running it in a child with no credentials in its environment keeps the
aggregator free of TensorFlow and safe from a crash. It answers ``evaluate`` requests: set
these weights, evaluate on these validation files, reply with the loss and metrics.
"""

from __future__ import annotations

import signal
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any


def child_main(pipe: Connection) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from daig.logs import quiet_tensorflow

    quiet_tensorflow()
    models: dict[str, Any] = {}
    while True:
        try:
            request = pipe.recv()
        except (EOFError, KeyboardInterrupt):
            return
        try:
            pipe.send({"ok": True, "metrics": _evaluate(models, request)})
        except Exception as exc:
            pipe.send({"ok": False, "error": f"{type(exc).__name__}: {exc}"[:2000]})


def _evaluate(models: dict[str, Any], request: dict[str, Any]) -> dict[str, float]:
    import numpy as np

    from daig.modelfile.keras_load import canonical_weights, load_model
    from daig.weights.schema import WeightSchema
    from daig.weights.stream import load_weights

    sha = request["model_sha256"]
    if sha not in models:
        models.clear()  # one project at a time keeps memory flat
        models[sha], _ = load_model(Path(request["model_path"]))
    model = models[sha]
    schema = WeightSchema.from_json(request["weight_schema"])
    for variable, value in zip(
        canonical_weights(model), load_weights(Path(request["weights_path"]), schema), strict=True
    ):
        variable.assign(value)
    x = np.load(request["x_path"], mmap_mode="r", allow_pickle=False)
    y = np.load(request["y_path"], mmap_mode="r", allow_pickle=False)
    results = model.evaluate(
        x, y, batch_size=request.get("batch_size", 256), verbose=0, return_dict=True
    )
    return {str(name): float(value) for name, value in results.items()}
