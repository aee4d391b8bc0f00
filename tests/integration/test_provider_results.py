"""What a volunteer can read about its own work: the grant names the project and its owner,
``GET /v1/provider/results`` says what became of each result (accepted, rejected and why,
credits), and the credit history carries project names. Real API, Postgres, aggregator."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from daig.hyperparams import Hyperparameters
from daig.weights.schema import WeightSchema
from tests.helpers.aggregation import DirectAggregator
from tests.helpers.projects import Started
from tests.helpers.queues import drain_tasks
from tests.helpers.results import Provider, random_delta


def test_a_volunteer_reads_its_results_with_project_names_and_credits(
    start_project: Callable[..., Started],
    make_user,
    api_server,
    aggregator: DirectAggregator,
    schema: WeightSchema,
    amqp_url: str,
) -> None:
    started = start_project(Hyperparameters(total_tasks=2, task_size=2))
    alice = Provider(make_user(api_server.url, "alice"))
    bob = Provider(make_user(api_server.url, "bob"))
    first, second = sorted(
        (alice.claim(m.task_id) for m in drain_tasks(amqp_url)), key=lambda g: g.shard
    )
    owner_name = started.owner.me().username
    assert (first.project_name, first.owner_name) == (started.project.name, owner_name)
    before = datetime.now(UTC)

    rejected = aggregator.handle(alice.result(first, random_delta(schema, 0), sha256="0" * 64))
    assert (rejected.status, rejected.reason) == ("rejected", "checksum_mismatch")
    accepted = aggregator.handle(alice.result(second, random_delta(schema, 1)))
    assert accepted.status == "accepted"

    results = alice.client.provider_results()
    assert [(r.status, r.shard, r.round) for r in results] == [
        ("accepted", 1, 0),
        ("rejected", 0, 0),
    ]
    assert {r.project_name for r in results} == {started.project.name}
    newest, oldest = results
    assert newest.credits > 0 and newest.reason is None
    assert alice.client.credits().earned == newest.credits
    assert (oldest.credits, oldest.reason) == (0, "checksum_mismatch")
    assert oldest.detail  # the reason in words, for the volunteer's event log
    assert [r.task_id for r in alice.client.provider_results(since=before)] == [
        second.task_id,
        first.task_id,
    ]
    assert alice.client.provider_results(since=newest.received_at) == []
    assert bob.client.provider_results() == []  # only one's own results

    history = alice.client.credit_history()
    work = [line for line in history if line.kind == "work"]
    assert [(line.project_name, line.task_id) for line in work] == [
        (started.project.name, second.task_id)
    ]
    grants = [line for line in history if line.kind == "grant"]
    assert grants and grants[0].project_name is None


def test_an_owner_volunteering_on_its_own_project_sees_what_it_earned(
    start_project: Callable[..., Started],
    aggregator: DirectAggregator,
    schema: WeightSchema,
    amqp_url: str,
) -> None:
    """The owner pays and earns the same task: the two entries of one account cancel out in
    the balance, but the volunteer's view shows the earning, not their sum (0)."""
    started = start_project(Hyperparameters(total_tasks=1, task_size=1))
    owner = Provider(started.owner)
    (grant,) = [owner.claim(m.task_id) for m in drain_tasks(amqp_url)]
    assert aggregator.handle(owner.result(grant, random_delta(schema, 0))).status == "accepted"
    (result,) = owner.client.provider_results()
    work = [line.amount for line in owner.client.credit_history() if line.kind == "work"]
    assert sorted(work) == [-result.credits, result.credits]  # paid, and earned
    assert result.credits > 0


def test_any_iso_moment_is_a_valid_since(api_server, make_user) -> None:
    """ISO 8601 allows zone offsets Postgres refuses (found by the fuzz test): answered, not 500."""
    client = make_user(api_server.url, "volunteer")
    for since in ("0058-01-14T13:53:18-19:45", "0001-01-01T00:00:00+05:00", "2026-01-01T00:00"):
        answer = client._http.get(
            f"{api_server.url}/v1/provider/results",
            params={"since": since},
            headers={"Authorization": f"Bearer {client.token}"},
        )
        assert answer.status_code == 200, (since, answer.text)
        assert answer.json() == []
