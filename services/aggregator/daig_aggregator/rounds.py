"""Closing a round: combine its accepted deltas, write the next weights, and at the end the model.

Runs inside the transaction that accepts the round's K-th result. Blobs are written before
that commit under deterministic keys, and deltas are read in slot order, so a close redone
after a crash writes identical bytes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from daig import keys, tempdirs
from daig.blobstore import BlobStore
from daig.db.models import Project, ProjectFile, Result, ResultStatus, Round, Task
from daig.weights.h5weights import write_weights
from daig.weights.schema import NDArrays, TensorSpec, WeightSchema
from daig.weights.stream import decode_weights, encode_weights, load_weights
from daig_aggregator import logic
from daig_aggregator.outer import outer_step
from daig_aggregator.strategies import Strategy, make_strategy

log = logging.getLogger(__name__)


def close_round(
    session: Session, blobs: BlobStore, project: Project, *, mean: NDArrays | None = None
) -> None:
    """Write weights version r+1 from version r and round r's accepted deltas; advance.

    ``mean``: the round's running mean, when the caller folded it already (mean only).
    """
    index = project.current_round
    assert project.weight_schema is not None
    schema = WeightSchema.from_json(project.weight_schema)
    results = session.scalars(
        select(Result)
        .join(Task, Task.id == Result.task_id)
        .where(
            Result.project_id == project.id,
            Result.round_index == index,
            Result.status == ResultStatus.ACCEPTED,
        )
        .order_by(Task.slot)
    ).all()

    def deltas() -> Iterator[tuple[NDArrays, int]]:
        for result in results:
            assert result.blob_key is not None
            yield decode_weights(blobs.get_bytes(result.blob_key), schema), result.samples

    strategy = project_strategy(project)
    update = mean if mean is not None else strategy.combine(deltas())
    base = decode_weights(blobs.get_bytes(keys.weights_key(project.id, index)), schema)
    new_weights = apply_outer_step(blobs, project, schema, base, update)
    new_key = keys.weights_key(project.id, index + 1)
    blobs.put_bytes(new_key, encode_weights(new_weights))
    round_row = session.get(Round, (project.id, index))
    assert round_row is not None
    round_row.closed_at = datetime.now(UTC)
    round_row.weights_key = new_key
    round_row.metrics = logic.round_metrics((r.history or {}, r.samples) for r in results) | {
        "samples": sum(r.samples for r in results),
        "slowest_fit_seconds": max(r.fit_seconds for r in results),
        "update_norm": logic.delta_norm(update),
    }
    project.current_round = index + 1
    log.info(
        "project %s round %s: closed (%s), weights version %s written (%s)",
        project.id,
        index + 1,
        strategy.name,
        index + 1,
        round_row.metrics,
    )
    if project.current_round == project.total_rounds:
        write_final_model(session, blobs, project, new_key, schema)


def velocity_schema(schema: WeightSchema) -> WeightSchema:
    return WeightSchema(tuple(TensorSpec(t.shape, "<f4") for t in schema.tensors))


def stored_velocity(
    blobs: BlobStore, project: Project, schema: WeightSchema, index: int
) -> NDArrays | None:
    """The outer optimizer's velocity going into round ``index`` (None: plain averaging, or
    nothing accumulated yet)."""
    if project.outer_optimizer == "average" or index == 0:
        return None
    return decode_weights(
        blobs.get_bytes(keys.velocity_key(project.id, index)), velocity_schema(schema)
    )


def project_strategy(project: Project) -> Strategy:
    """The project's robust-aggregation strategy with its settings."""
    return make_strategy(
        project.aggregation, trim_fraction=project.trim_fraction, clip_factor=project.clip_factor
    )


def apply_outer_step(
    blobs: BlobStore, project: Project, schema: WeightSchema, base: NDArrays, update: NDArrays
) -> NDArrays:
    """Weights version r+1; writes the outer optimizer's velocity r+1 when it keeps one."""
    index = project.current_round
    velocity = stored_velocity(blobs, project, schema, index)
    new_weights, new_velocity = outer_step(
        base,
        update,
        velocity,
        kind=project.outer_optimizer,
        learning_rate=project.outer_learning_rate,
        momentum=project.outer_momentum,
    )
    if new_velocity is not None:
        blobs.put_bytes(keys.velocity_key(project.id, index + 1), encode_weights(new_velocity))
    return new_weights


def write_final_model(
    session: Session, blobs: BlobStore, project: Project, weights_key: str, schema: WeightSchema
) -> None:
    """The requestor's model file with the last weights, kept as the project's result."""
    model = session.get(ProjectFile, (project.id, "model"))
    assert model is not None
    with tempdirs.scratch("final") as directory:
        source, target, weights = (directory / n for n in ("in.h5", "out.h5", "w.dwt"))
        blobs.download(model.blob_key, source)
        blobs.download(weights_key, weights)
        write_weights(source, target, load_weights(weights, schema))
        final_key = keys.final_model_key(project.id)
        blobs.put_file(final_key, target)
    project.final_model_key = final_key
    log.info("project %s: final model written to %s", project.id, final_key)
