"""Issue 15: why nothing happens and what it will cost, and ids and errors people can use.

Against the real API (and the real aggregator, handed results by the test): volunteers online
now, the "waiting for volunteers" hint, distinct contributors, elapsed time that stops while
paused, the estimate before Start, the server's 422 naming the field, and the CLI's project
ids by prefix -- the CLI run as a person runs it (subprocesses).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import httpx
import pytest

from daig.client import ClientError, DaigClient
from daig.credits.units import credits_text
from daig.hyperparams import Hyperparameters
from tests.helpers.accounts import PASSWORD
from tests.helpers.aggregation import DirectAggregator
from tests.helpers.cli import run_daig
from tests.helpers.projects import Started
from tests.helpers.queues import drain_tasks
from tests.helpers.results import Provider, random_delta
from tests.helpers.services import ApiServer


def login_args(server: ApiServer, client: DaigClient) -> list[str]:
    return ["--server", server.url, "--user", client.me().username, "--password", PASSWORD]


def test_waiting_hint_counts_volunteers_online(
    start_project: Callable[..., Started],
    api_server: ApiServer,
    make_user,
    amqp_url: str,
    tmp_path,
) -> None:
    started = start_project(Hyperparameters(total_tasks=3, task_size=3))
    owner = started.owner
    assert owner.volunteers().online == 0
    assert owner.project(started.id).waiting_hint == "waiting for volunteers: 0 online now"

    idle = make_user(api_server.url, "idle")
    idle.presence("idle-agent")  # an agent waiting for tasks
    assert owner.volunteers().online == 1
    project = owner.project(started.id)
    assert project.volunteers_online == 1 and project.tasks_in_flight == 0
    assert project.waiting_hint == "waiting for volunteers: 1 online now"
    short = str(started.id)[:8]
    shown = run_daig(tmp_path, "project", "status", short, *login_args(api_server, owner))
    assert shown.returncode == 0, shown.stderr
    assert "waiting for volunteers: 1 online now" in " ".join(shown.stderr.split())

    busy = Provider(make_user(api_server.url, "busy"))
    busy.claim(drain_tasks(amqp_url)[0].task_id)  # training: online through its claim
    online = owner.volunteers()
    assert (online.online, online.agents) == (2, 2)
    project = owner.project(started.id)
    assert project.tasks_in_flight == 1 and project.waiting_hint == ""


def test_contributors_are_distinct_volunteers(
    start_project: Callable[..., Started],
    api_server: ApiServer,
    make_user,
    aggregator: DirectAggregator,
    schema,
    amqp_url: str,
) -> None:
    started = start_project(Hyperparameters(total_tasks=3, task_size=3))
    first = Provider(make_user(api_server.url, "first"))
    second = Provider(make_user(api_server.url, "second"))
    tasks = drain_tasks(amqp_url)
    grants = [first.claim(tasks[0].task_id), first.claim(tasks[1].task_id)]
    grants.append(second.claim(tasks[2].task_id))
    project = started.owner.project(started.id)
    assert (project.tasks_in_flight, project.contributors) == (3, 0)
    for seed, grant in enumerate(grants):
        volunteer = first if grant.claim_id != grants[2].claim_id else second
        verdict = aggregator.handle(volunteer.result(grant, random_delta(schema, seed)))
        assert verdict is not None and verdict.status == "accepted"
    project = started.owner.project(started.id)
    assert project.accepted_tasks == 3
    assert project.contributors == 2  # two accounts, three results
    assert project.tasks_in_flight == 0


def test_elapsed_time_stops_while_paused(start_project: Callable[..., Started]) -> None:
    started = start_project(Hyperparameters(total_tasks=3, task_size=3))
    owner = started.owner
    paused = owner.pause(started.id)
    assert paused.elapsed_seconds is not None
    time.sleep(1.5)
    still = owner.project(started.id).elapsed_seconds
    assert still is not None and still - paused.elapsed_seconds < 0.05
    owner.resume(started.id)
    time.sleep(0.5)
    going = owner.project(started.id)
    assert going.elapsed_seconds is not None
    assert going.elapsed_seconds > still + 0.4
    assert going.started_at is not None
    since_start = time.time() - going.started_at.timestamp()  # the server's clock is ours
    assert going.elapsed_seconds < since_start - 1.4  # the pause is left out


def test_estimate_before_start_in_the_cli(
    api_server: ApiServer, make_user, digits_files, tmp_path
) -> None:
    owner = make_user(api_server.url, "owner")
    files = ["--model", str(digits_files.model), "--data", str(digits_files.data)]
    files += ["--labels", str(digits_files.labels)]
    made = run_daig(
        tmp_path,
        "project",
        "create",
        *files,
        "--total-tasks",
        "6",
        "--task-size",
        "3",
        *login_args(api_server, owner),
    )
    assert made.returncode == 0, made.stderr
    project_id = made.stdout.strip()
    estimate = owner.estimate(project_id)
    assert estimate.cost.estimate is not None and estimate.cost.estimate > 0
    said = " ".join(made.stderr.split())
    assert f"estimated cost: {credits_text(estimate.cost.estimate)} credits" in said
    assert "estimated time: no volunteers online: cannot estimate time" in said
    assert owner.project(project_id).state == "created"

    make_user(api_server.url, "vol").presence("agent-1")
    started = run_daig(tmp_path, "project", "start", project_id[:10])
    assert started.returncode == 0, started.stderr
    said = " ".join(started.stderr.split())
    assert said.index("estimated time: about") < said.index("training started")
    assert "with the 1 volunteer online now (1 agent" in said
    assert "assumed: nothing measured yet" in said
    assert owner.project(project_id).state == "queued"


def test_project_ids_by_prefix(api_server: ApiServer, make_user, tmp_path) -> None:
    owner = make_user(api_server.url, "owner")
    ids: list[str] = []
    while len({i[0] for i in ids}) == len(ids):  # until two ids share their first digit
        ids.append(str(owner.create_project("p", Hyperparameters()).id))
    first = ids[-1][0]
    twins = [i for i in ids if i[0] == first]
    login = login_args(api_server, owner)

    unique = twins[0][: next(n for n in range(2, 37) if twins[1][:n] != twins[0][:n])]
    shown = run_daig(tmp_path, "project", "status", unique, *login)
    assert shown.returncode == 0, shown.stderr
    assert twins[0] in shown.stderr

    ambiguous = run_daig(tmp_path, "project", "delete", first)
    text = " ".join(ambiguous.stderr.split())
    assert ambiguous.returncode == 1
    assert f"{first} is ambiguous" in text and all(t in text for t in twins)
    assert len(owner.projects()) == len(ids)  # nothing deleted

    unknown_prefix = next(c for c in "0123456789abcdef" if all(not i.startswith(c) for i in ids))
    unknown = run_daig(tmp_path, "credits", "cost", unknown_prefix)
    assert unknown.returncode == 1
    said = " ".join(unknown.stderr.split())
    assert f"no project of yours has an id starting with {unknown_prefix}" in said


def test_server_refusals_name_the_field(api_server: ApiServer, make_user) -> None:
    owner = make_user(api_server.url, "owner")
    answer = httpx.post(
        f"{api_server.url}/v1/projects",
        json={"name": "x", "epochs": 0, "share": 2},
        headers={"Authorization": f"Bearer {owner.token}"},
    )
    assert answer.status_code == 422
    detail = answer.json()["detail"]
    assert "epochs: must be between 1 and 1000 (got 0)" in detail
    assert "share: must be between 0.05 and 1 (got 2)" in detail
    bad = Hyperparameters.model_construct(**(Hyperparameters().model_dump() | {"batch_size": 0}))
    with pytest.raises(ClientError) as caught:
        owner.create_project("x", bad)
    assert str(caught.value) == "batch_size: must be between 1 and 65536 (got 0)"
    assert caught.value.status == 422


def test_unknown_project_id_is_refused_plainly(api_server: ApiServer, make_user) -> None:
    owner = make_user(api_server.url, "owner")
    with pytest.raises(ClientError, match="no project"):
        owner.project(uuid.uuid4())  # a DAIG 404 stays a DAIG 404, not "not a DAIG server"


def test_wait_follows_the_server_until_the_end(
    start_project: Callable[..., Started], api_server: ApiServer, tmp_path
) -> None:
    started = start_project(Hyperparameters(total_tasks=3, task_size=3))
    started.owner.cancel(started.id)
    login = login_args(api_server, started.owner)
    waited = run_daig(tmp_path, "project", "wait", str(started.id)[:8], *login)
    assert waited.returncode == 1, waited.stderr
    assert "error: project cancelled" in " ".join(waited.stderr.split())
