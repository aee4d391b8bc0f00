"""What a model's saved configuration says about its output: last-layer units and activation.

Read from the JSON model configuration (``.h5`` attribute or ``.keras`` ``config.json``), never
by building the model. Layers that keep their input's width (Activation, Dropout, ...) are
walked back to the layer that sets it. Anything this cannot follow (several outputs, a Reshape
at the end, a layer without ``units``/``filters``) answers ``None``: the label check is then
skipped, never guessed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Layers whose output has their input's last-axis width; the activation they apply, if any.
PASS_THROUGH: dict[str, str | None] = {
    "Activation": None,  # read from the layer's own "activation"
    "Softmax": "softmax",
    "ReLU": "relu",
    "LeakyReLU": "leaky_relu",
    "ELU": "elu",
    "PReLU": "prelu",
    "Dropout": None,
    "SpatialDropout1D": None,
    "SpatialDropout2D": None,
    "SpatialDropout3D": None,
    "GaussianNoise": None,
    "GaussianDropout": None,
    "AlphaDropout": None,
    "ActivityRegularization": None,
    "BatchNormalization": None,
    "LayerNormalization": None,
}
ACTIVATING = frozenset({"Activation", "Softmax", "ReLU", "LeakyReLU", "ELU", "PReLU"})


@dataclass(frozen=True)
class OutputLayer:
    """The model's single output: its width (last axis) and final activation."""

    name: str
    units: int
    activation: str | None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "units": self.units, "activation": self.activation}

    @classmethod
    def from_json(cls, data: Any) -> OutputLayer | None:
        if not isinstance(data, dict) or not isinstance(data.get("units"), int):
            return None
        activation = data.get("activation")
        return cls(str(data.get("name")), data["units"], activation and str(activation))


def output_layer(model_config: dict[str, Any]) -> OutputLayer | None:
    """The output layer of a Sequential or functional model's configuration, if readable."""
    inner = model_config.get("config")
    layers = inner.get("layers") if isinstance(inner, dict) else None
    if not isinstance(layers, list) or not layers:
        return None
    if model_config.get("class_name") == "Sequential":
        return _walk_back(layers, len(layers) - 1, lambda i: i - 1 if i > 0 else None)
    by_name = {name: i for i, layer in enumerate(layers) if (name := _name(layer)) is not None}
    outputs = inner.get("output_layers") if isinstance(inner, dict) else None
    if isinstance(outputs, list) and outputs and isinstance(outputs[0], str):
        outputs = [outputs]  # Keras 3 writes a single output as ["name", 0, 0]
    if not isinstance(outputs, list) or len(outputs) != 1 or not isinstance(outputs[0], list):
        return None
    start = by_name.get(outputs[0][0])
    if start is None:
        return None
    return _walk_back(layers, start, lambda i: _single_inbound(layers[i], by_name))


def _walk_back(layers: list[Any], index: int, previous: Any) -> OutputLayer | None:
    activation: str | None = None
    output_name: str | None = None
    at: int | None = index
    for _ in range(len(layers)):
        if at is None or not isinstance(layers[at], dict):
            return None
        layer = layers[at]
        output_name = output_name or _name(layer)
        config = layer.get("config") if isinstance(layer.get("config"), dict) else {}
        width = config.get("units", config.get("filters"))
        if isinstance(width, int):
            own = _activation(config.get("activation"))
            return OutputLayer(output_name or "", width, activation or own or "linear")
        class_name = layer.get("class_name")
        if class_name not in PASS_THROUGH:
            return None
        if activation is None and class_name in ACTIVATING:
            activation = PASS_THROUGH[class_name] or _activation(config.get("activation"))
        at = previous(at)
    return None


def _single_inbound(layer: dict[str, Any], by_name: dict[str, int]) -> int | None:
    """The index of the one layer feeding ``layer``, in Keras 2 or Keras 3 notation."""
    names: list[str] = []

    def collect(node: Any) -> None:
        if isinstance(node, dict):
            history = node.get("keras_history")
            if isinstance(history, list) and history and isinstance(history[0], str):
                names.append(history[0])
                return
            for value in node.values():
                collect(value)
        elif isinstance(node, list):
            # Keras 2: [["dense", 0, 0, {}]] per node
            if len(node) >= 3 and isinstance(node[0], str) and isinstance(node[1], int):
                names.append(node[0])
                return
            for value in node:
                collect(value)

    collect(layer.get("inbound_nodes"))
    if len(set(names)) != 1:
        return None
    return by_name.get(names[0])


def _name(layer: Any) -> str | None:
    if not isinstance(layer, dict):
        return None
    config = layer.get("config")
    name = config.get("name") if isinstance(config, dict) else None
    return str(name or layer.get("name") or "") or None


def _activation(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, dict):  # {"class_name": "function", "config": "softmax"} and the like
        inner = value.get("config")
        return str(inner) if isinstance(inner, str) else str(value.get("class_name"))
    return None


def label_facts(model_config: dict[str, Any], loss: Any) -> dict[str, Any]:
    """What the label check needs from a model, for its file's metadata (JSON)."""
    layer = output_layer(model_config)
    return {"output": layer.to_json() if layer else None, "loss_config": loss}
