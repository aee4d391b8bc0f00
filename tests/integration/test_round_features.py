"""Delta codecs, inline deltas, the streaming mean, the outer optimizer and per-round evaluation,
in the real aggregator on real Postgres and blobs."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable

import numpy as np
import pytest

from daig import keys
from daig.blobstore import BlobStore
from daig.hyperparams import Hyperparameters
from daig.weights.schema import WeightSchema
from daig.weights.stream import decode_weights, encode_weights
from daig_aggregator.audit import audit_project
from daig_aggregator.evaluator import Evaluator
from daig_aggregator.rounds import velocity_schema
from tests.helpers.aggregation import DirectAggregator
from tests.helpers.projects import Started
from tests.helpers.queues import drain_tasks
from tests.helpers.results import Provider, claim_round, random_delta


def _weights(blobs: BlobStore, started: Started, version: int, schema: WeightSchema):
    return decode_weights(blobs.get_bytes(keys.weights_key(started.id, version)), schema)


def test_int8_deltas_are_accepted_and_averaged_as_decoded(
    start_project: Callable[..., Started],
    provider: Provider,
    aggregator: DirectAggregator,
    server_blobs: BlobStore,
    schema: WeightSchema,
    amqp_url: str,
) -> None:
    started = start_project(Hyperparameters(total_tasks=3, task_size=3, delta_codec="int8"))
    grants = claim_round(provider, amqp_url)
    assert {g.delta_codec for g in grants} == {"int8"}
    deltas = [random_delta(schema, seed) for seed in range(3)]
    decoded = []
    for grant, delta in zip(grants, deltas, strict=True):
        body = encode_weights(delta, codec="int8")
        assert len(body) * 3.5 < len(encode_weights(delta))
        decoded.append(decode_weights(body, schema))
        message = provider.result(
            grant,
            None,
            sha256=hashlib.sha256(body).hexdigest(),
            inline_delta=base64.b64encode(body).decode(),
        )
        assert aggregator.handle(message).status == "accepted"
        # an inline delta is kept under its key like an uploaded one
        assert server_blobs.get_bytes(grant.result_key) == body
    rows = {0: 3, 1: 3, 2: 4}
    base, new = (
        read_weights_base(started, server_blobs, schema),
        _weights(server_blobs, started, 1, schema),
    )
    for index in range(len(base)):
        mean = sum(rows[s] * decoded[s][index].astype(np.float64) for s in range(3)) / 10
        np.testing.assert_allclose(new[index], base[index] + mean, rtol=1e-6, atol=1e-7)


def read_weights_base(started: Started, blobs: BlobStore, schema: WeightSchema):
    return _weights(blobs, started, 0, schema)


def test_running_mean_and_a_fresh_aggregator_give_the_same_weights(
    start_project: Callable[..., Started],
    provider: Provider,
    sessions,
    server_blobs,
    api_server,
    schema: WeightSchema,
    amqp_url: str,
) -> None:
    """The streaming fold is a cache: a restarted aggregator recomputes from the blobs."""
    started = start_project(Hyperparameters(total_tasks=3, task_size=3, passes=2))
    first = DirectAggregator(sessions, server_blobs, api_server.settings)
    grants = claim_round(provider, amqp_url)
    for seed, grant in enumerate(grants[:2]):
        assert first.handle(provider.result(grant, random_delta(schema, seed))).status == "accepted"
    restarted = DirectAggregator(sessions, server_blobs, api_server.settings)  # no running mean
    verdict = restarted.handle(provider.result(grants[2], random_delta(schema, 2)))
    assert verdict.round_closed
    recomputed = _weights(server_blobs, started, 1, schema)
    base = read_weights_base(started, server_blobs, schema)
    rows = {0: 3, 1: 3, 2: 4}
    for index in range(len(base)):
        mean = (
            sum(rows[s] * random_delta(schema, s)[index].astype(np.float64) for s in range(3)) / 10
        )
        np.testing.assert_allclose(recomputed[index], base[index] + mean, rtol=1e-6, atol=1e-7)


def test_nesterov_outer_optimizer_keeps_and_audits_a_velocity(
    start_project: Callable[..., Started],
    provider: Provider,
    aggregator: DirectAggregator,
    scheduler,
    broker_session,
    server_blobs: BlobStore,
    sessions,
    schema: WeightSchema,
    amqp_url: str,
) -> None:
    lr, mu = 0.7, 0.9
    started = start_project(
        Hyperparameters(
            total_tasks=3,
            task_size=3,
            passes=2,
            outer_optimizer="nesterov",
            outer_learning_rate=lr,
            outer_momentum=mu,
        )
    )
    updates = []
    for round_index in range(2):
        if round_index:
            scheduler.reconcile(started.id, broker_session)
        grants = claim_round(provider, amqp_url)
        deltas = [random_delta(schema, 10 * round_index + s, scale=0.001) for s in range(3)]
        for grant, delta in zip(grants, deltas, strict=True):
            assert aggregator.handle(provider.result(grant, delta)).status == "accepted"
        rows = {0: 3, 1: 3, 2: 4}
        updates.append(
            [
                sum(rows[s] * deltas[s][i].astype(np.float64) for s in range(3)) / 10
                for i in range(len(schema))
            ]
        )
    w0 = read_weights_base(started, server_blobs, schema)
    v1 = updates[0]
    v2 = [mu * a + b for a, b in zip(v1, updates[1], strict=True)]
    expected_w1 = [w + lr * (mu * v + u) for w, v, u in zip(w0, v1, updates[0], strict=True)]
    expected_w2 = [
        w + lr * (mu * v + u) for w, v, u in zip(expected_w1, v2, updates[1], strict=True)
    ]
    for version, expected in ((1, expected_w1), (2, expected_w2)):
        got = _weights(server_blobs, started, version, schema)
        for g, e in zip(got, expected, strict=True):
            np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-6)
    velocity = decode_weights(
        server_blobs.get_bytes(keys.velocity_key(started.id, 2)), velocity_schema(schema)
    )
    for g, e in zip(velocity, v2, strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-7)
    with sessions() as session:
        report = audit_project(session=session, blobs=server_blobs, project_id=started.id)
    assert report.ok and report.rounds_verified == 2, report.problems


def test_each_new_model_is_evaluated_on_the_validation_files(
    api_server,
    make_user,
    digits_files,
    provider: Provider,
    aggregator: DirectAggregator,
    scheduler,
    broker_session,
    sessions,
    server_blobs,
    schema: WeightSchema,
    amqp_url: str,
) -> None:
    owner = make_user(api_server.url, "requestor")
    project = owner.create_project("evaluated", Hyperparameters(total_tasks=3, task_size=3))
    for kind, path in (
        ("model", digits_files.model),
        ("data", digits_files.data),
        ("labels", digits_files.labels),
        ("validation_data", digits_files.test_data),
        ("validation_labels", digits_files.test_labels),
    ):
        owner.upload_file(project.id, kind, path)
    owner.start(project.id)

    scheduler.reconcile(project.id, broker_session)
    for seed, grant in enumerate(claim_round(provider, amqp_url)):
        assert (
            aggregator.handle(provider.result(grant, random_delta(schema, seed))).status
            == "accepted"
        )
    evaluator = Evaluator(sessions, server_blobs)
    try:
        assert evaluator.evaluate_next()
        assert not evaluator.evaluate_next(), "each round is evaluated once"
    finally:
        evaluator.close()
    [round_zero] = owner.rounds(project.id)
    evaluation = round_zero.evaluation
    assert set(evaluation) >= {"loss", "accuracy"}, evaluation
    assert 0.0 <= evaluation["accuracy"] <= 1.0 and evaluation["loss"] > 0
    assert owner.project(project.id).latest_evaluation == evaluation
    drain_tasks(amqp_url)


def test_validation_files_must_match_the_training_files(
    api_server, make_user, digits_files, tmp_path
) -> None:
    from daig.client import ClientError

    owner = make_user(api_server.url, "requestor")
    project = owner.create_project("mismatch", Hyperparameters())
    owner.upload_file(project.id, "data", digits_files.data)
    wrong = tmp_path / "xv.npy"
    np.save(wrong, np.zeros((10, 63), np.float32))
    with pytest.raises(ClientError) as error:
        owner.upload_file(project.id, "validation_data", wrong)
    assert error.value.status == 422 and "validation data rows have shape (63,)" in str(error.value)
