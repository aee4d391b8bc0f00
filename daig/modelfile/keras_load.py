"""Loading a checked model with Keras and compiling it from its saved training configuration.

Keras 3 cannot ``fit`` an ``.h5`` model loaded together with its saved optimizer ("Unknown
variable"), and files saved by Keras 2 (tf-keras) name optimizers, losses and metrics in ways
Keras 3 does not read back. So the model is loaded with ``compile=False`` and compiled again
from a translation of the file's ``training_config``, built only from allow-listed names.
Keras is imported lazily: servers never import it.
"""

from __future__ import annotations

import inspect as pyinspect
from pathlib import Path
from typing import Any

from daig.modelfile import allowlist
from daig.modelfile.inspect import ModelInfo, ModelRejected, inspect_model

# Keras 2 optimizer arguments Keras 3 renamed or dropped.
_RENAMED = {"lr": "learning_rate"}


def load_model(path: Path) -> tuple[Any, ModelInfo]:
    """Check the file, load it with ``safe_mode``, and compile it from its training config."""
    import keras

    info = inspect_model(path)
    model = keras.models.load_model(path, compile=False, safe_mode=True)
    model.compile(**compile_arguments(info.training_config))
    return model, info


def canonical_weights(model: Any) -> list[Any]:
    """The model's variables in legacy-h5 order (per layer: trainable, then non-trainable)."""
    variables = []
    for layer in model.layers:
        variables.extend(layer.trainable_weights + layer.non_trainable_weights)
    return variables


def compile_arguments(training_config: dict[str, Any]) -> dict[str, Any]:
    """``model.compile`` keyword arguments equivalent to a saved ``training_config``."""
    arguments: dict[str, Any] = {
        "optimizer": _optimizer(training_config["optimizer_config"]),
        "loss": _per_output(training_config["loss"], _loss),
    }
    for key in ("metrics", "weighted_metrics"):
        if training_config.get(key):
            arguments[key] = _metrics(training_config[key])
    if isinstance(training_config.get("loss_weights"), (list, dict)):
        arguments["loss_weights"] = training_config["loss_weights"]
    return arguments


def _accepted_kwargs(cls: type, config: dict[str, Any]) -> dict[str, Any]:
    parameters = pyinspect.signature(cls).parameters
    renamed = {_RENAMED.get(k, k): v for k, v in config.items()}
    # Keras 2 writes None for "not set" (e.g. a schedule's name); passing it would override a
    # Keras 3 default that is not None (ExponentialDecay(name=None) fails inside fit).
    return {
        k: v
        for k, v in renamed.items()
        if k in parameters and k != "self" and not (v is None and parameters[k].default is not None)
    }


def _optimizer(config: dict[str, Any]) -> Any:
    import keras

    name = str(config["class_name"]).removeprefix(allowlist.KERAS2_OPTIMIZER_PREFIX)
    if name not in allowlist.OPTIMIZERS:
        raise ModelRejected(f"optimizer {name!r} is not a built-in optimizer")
    cls = getattr(keras.optimizers, name)
    kwargs = _accepted_kwargs(cls, dict(config.get("config") or {}))
    rate = kwargs.get("learning_rate")
    if isinstance(rate, dict):
        kwargs["learning_rate"] = _schedule(rate)
    return cls(**kwargs)


def _schedule(config: dict[str, Any]) -> Any:
    import keras

    name = str(config.get("class_name"))
    if name not in allowlist.SCHEDULES:
        raise ModelRejected(f"learning-rate schedule {name!r} is not a built-in schedule")
    cls = getattr(keras.optimizers.schedules, name)
    return cls(**_accepted_kwargs(cls, dict(config.get("config") or {})))


def _per_output(entry: Any, convert: Any) -> Any:
    if isinstance(entry, list):
        return [convert(item) for item in entry]
    if isinstance(entry, dict) and "class_name" not in entry:
        return {output: convert(item) for output, item in entry.items()}
    return convert(entry)


def _loss(entry: Any) -> Any:
    import keras

    if isinstance(entry, str):
        return entry
    name = entry.get("class_name")
    if name == "function":
        return str(entry["config"])
    if name not in allowlist.LOSS_CLASSES:
        raise ModelRejected(f"loss {name!r} is not a built-in loss")
    cls = getattr(keras.losses, name)
    config = dict(entry.get("config") or {})
    if config.get("reduction") in ("auto", None):
        config.pop("reduction", None)  # Keras 2's "auto" is Keras 3's default
    return cls(**_accepted_kwargs(cls, config))


def _metrics(entry: Any) -> Any:
    # Keras 2 stores single-output metrics as a list holding one list.
    if isinstance(entry, list) and len(entry) == 1 and isinstance(entry[0], list):
        entry = entry[0]
    if isinstance(entry, dict) and "class_name" not in entry:
        return {output: _metrics(item) for output, item in entry.items()}
    if isinstance(entry, list):
        return [_metric(item) for item in entry]
    return [_metric(entry)]


def _metric(entry: Any) -> Any:
    import keras

    if isinstance(entry, str):
        return entry
    name = entry.get("class_name")
    config = dict(entry.get("config") or {})
    if name == "function":
        return str(config) if isinstance(entry.get("config"), str) else str(entry["config"])
    if name == "MeanMetricWrapper":
        # "accuracy" stands for whichever accuracy suits the loss; keep Keras' own resolution.
        label = config.get("name")
        return label if label in allowlist.METRIC_FUNCTIONS else str(config.get("fn"))
    if name not in allowlist.METRIC_CLASSES:
        raise ModelRejected(f"metric {name!r} is not a built-in metric")
    cls = getattr(keras.metrics, name)
    return cls(**_accepted_kwargs(cls, config))


class FreshOptimizer:
    """Puts the optimizer back to its just-compiled state before each task, without
    recompiling (which would retrace the training step, about 2.5x slower on small tasks).

    Every task must start like a freshly loaded model: same optimizer settings, zero moments,
    iteration 0. The optimizer is built once, its variables (moments, iteration, learning
    rate) snapshotted, and restored before each ``fit``.
    """

    def __init__(self, model: Any) -> None:
        model.optimizer.build(model.trainable_variables)
        self._variables = list(model.optimizer.variables)
        self._initial = [v.numpy().copy() for v in self._variables]

    def reset(self) -> None:
        for variable, value in zip(self._variables, self._initial, strict=True):
            variable.assign(value)
