"""Composing the project's current model: the requestor's file with the newest weights."""

from __future__ import annotations

from pathlib import Path

from daig import keys, tempdirs
from daig.blobstore import BlobStore
from daig.db.models import Project
from daig.weights.h5weights import write_weights
from daig.weights.schema import WeightSchema
from daig.weights.stream import load_weights


def current_model(*, blobs: BlobStore, project: Project, model_key: str) -> tuple[Path, int | None]:
    """A temporary ``.h5`` of the newest model and its weights version (None: as uploaded).

    The caller removes the returned file's parent directory (``tempdirs.remove``).
    """
    directory = tempdirs.process_dir("model")
    target = directory / "model.h5"
    if project.final_model_key:
        blobs.download(project.final_model_key, target)
        return target, project.total_rounds
    source = directory / "uploaded.h5"
    blobs.download(model_key, source)
    if project.weight_schema is None:
        source.rename(target)
        return target, None
    version = project.current_round
    weights_file = directory / "weights.dwt"
    blobs.download(keys.weights_key(project.id, version), weights_file)
    arrays = load_weights(weights_file, WeightSchema.from_json(project.weight_schema))
    write_weights(source, target, arrays)
    return target, version
