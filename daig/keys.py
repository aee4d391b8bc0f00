"""Deterministic blob keys: writing the same thing twice lands on the same key (idempotent)."""

from __future__ import annotations

import uuid


def project_prefix(project_id: uuid.UUID) -> str:
    return f"projects/{project_id}"


def file_key(project_id: uuid.UUID, kind: str) -> str:
    return f"{project_prefix(project_id)}/files/{kind}"


def weights_key(project_id: uuid.UUID, version: int) -> str:
    return f"{project_prefix(project_id)}/weights/{version:06d}.dwt"


def velocity_prefix(project_id: uuid.UUID) -> str:
    """Where the outer optimizer's velocities are (``velocity_key``)."""
    return f"{project_prefix(project_id)}/outer"


def velocity_key(project_id: uuid.UUID, version: int) -> str:
    """The outer optimizer's velocity after producing weights ``version``."""
    return f"{velocity_prefix(project_id)}/{version:06d}.dwt"


def results_prefix(project_id: uuid.UUID) -> str:
    """Where the providers' deltas are (``result_key``), accepted or not."""
    return f"{project_prefix(project_id)}/rounds"


def result_key(
    project_id: uuid.UUID, round_index: int, task_id: uuid.UUID, claim_id: uuid.UUID
) -> str:
    return f"{results_prefix(project_id)}/{round_index:06d}/{task_id}/{claim_id}.dwt"


def final_model_key(project_id: uuid.UUID) -> str:
    return f"{project_prefix(project_id)}/model/final.h5"
