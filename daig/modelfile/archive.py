"""Checking a Keras 3 ``.keras`` archive by reading its configuration, never executing it.

A ``.keras`` file is a zip of ``config.json`` (the model and its ``compile_config``),
``metadata.json`` and ``model.weights.h5``. The zip is read member by member with size
limits (no extraction, so no path tricks and no zip bombs), and the configuration goes
through the same allow-list as an ``.h5`` model's. The server then converts accepted archives
to ``.h5`` in a sandboxed process (``daig.modelfile.convert``).
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

from daig.modelfile.inspect import (
    ModelRejected,
    check_model_config,
    check_training_config,
    input_shape,
)
from daig.modelfile.output import label_facts

ALLOWED_MEMBERS = {"config.json", "metadata.json", "model.weights.h5"}
MAX_CONFIG_BYTES = 16 * 1024 * 1024
MAX_WEIGHTS_BYTES = 4 * 1024**3
MAX_COMPRESSION_RATIO = 100


def is_keras_archive(path: Path) -> bool:
    return zipfile.is_zipfile(path)


def inspect_archive(path: Path) -> dict[str, Any]:
    """Validate a ``.keras`` archive; returns a summary like an ``.h5`` model's (no weights)."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = {info.filename: info for info in archive.infolist()}
            _check_members(members)
            config = _json(archive, members["config.json"])
            metadata = (
                _json(archive, members["metadata.json"]) if "metadata.json" in members else {}
            )
    except zipfile.BadZipFile as exc:
        raise ModelRejected(f"the .keras archive is damaged ({exc}); save the model again") from exc
    compile_config = config.get("compile_config")
    if not isinstance(compile_config, dict) or not compile_config.get("optimizer"):
        raise ModelRejected(
            "the model is not compiled; call model.compile(optimizer=..., "
            "loss=...) before model.save()"
        )
    check_model_config(config)
    check_training_config(
        {
            "optimizer_config": compile_config.get("optimizer"),
            "loss": compile_config.get("loss"),
            "metrics": compile_config.get("metrics"),
            "weighted_metrics": compile_config.get("weighted_metrics"),
        }
    )
    optimizer = compile_config["optimizer"]
    return {
        "class_name": config.get("class_name"),
        "keras_version": str(metadata.get("keras_version", "unknown")),
        "input_shape": list(input_shape(config)),
        "layers": len(config.get("config", {}).get("layers", [])),
        "optimizer": optimizer.get("class_name") if isinstance(optimizer, dict) else str(optimizer),
        "loss": str(compile_config.get("loss")),
        "format": "keras",
    } | label_facts(config, compile_config.get("loss"))


def _check_members(members: dict[str, zipfile.ZipInfo]) -> None:
    unexpected = sorted(set(members) - ALLOWED_MEMBERS)
    if unexpected:
        raise ModelRejected(
            f"the .keras archive holds unexpected files {unexpected}; save the "
            "model with model.save('model.keras') and nothing added"
        )
    for name in ("config.json", "model.weights.h5"):
        if name not in members:
            raise ModelRejected(f"the .keras archive has no {name}; save the model again")
    for name, info in members.items():
        limit = MAX_WEIGHTS_BYTES if name == "model.weights.h5" else MAX_CONFIG_BYTES
        if info.file_size > limit:
            raise ModelRejected(
                f"{name} in the archive is {info.file_size:,} bytes; the limit is {limit:,}"
            )
        if info.compress_size and info.file_size / info.compress_size > MAX_COMPRESSION_RATIO:
            raise ModelRejected(
                f"{name} in the archive is compressed {info.file_size // info.compress_size}:1; "
                "that is not a Keras model"
            )


def _json(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> dict[str, Any]:
    with archive.open(info) as member:
        raw = member.read(MAX_CONFIG_BYTES + 1)
    if len(raw) > MAX_CONFIG_BYTES:
        raise ModelRejected(f"{info.filename} is larger than declared; the archive is damaged")
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise ModelRejected(f"{info.filename} is not readable JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise ModelRejected(f"{info.filename} is not a JSON object")
    return value
