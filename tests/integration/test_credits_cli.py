"""``daig credits`` and ``daig leaderboard`` as a person runs them (subprocesses) against the
real API, after a real aggregator accepted a volunteer's results."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from daig.credits.pricing import task_cost
from daig.credits.units import to_units, units_text
from daig.hyperparams import Hyperparameters
from tests.helpers.accounts import PASSWORD
from tests.helpers.aggregation import DirectAggregator
from tests.helpers.cli import run_daig
from tests.helpers.projects import Started
from tests.helpers.queues import drain_tasks
from tests.helpers.results import ROWS, Provider, random_delta


def test_balance_history_cost_and_leaderboard_commands(
    start_project: Callable[..., Started],
    api_server,
    make_user,
    aggregator: DirectAggregator,
    schema,
    amqp_url: str,
    tmp_path,
) -> None:
    started = start_project(Hyperparameters(total_tasks=3, task_size=3, epochs=2))
    volunteer = Provider(make_user(api_server.url, "vol"))
    name = volunteer.client.me().username
    paid = {}
    for seed, message in enumerate(drain_tasks(amqp_url)):
        grant = volunteer.claim(message.task_id)
        assert (
            aggregator.handle(volunteer.result(grant, random_delta(schema, seed))).status
            == "accepted"
        )
        paid[grant.task_id] = task_cost(
            samples=ROWS[grant.shard], epochs=2, parameters=schema.parameters
        )
    earned, granted = sum(paid.values()), to_units(api_server.settings.credit_signup_grant)
    login = ["--server", api_server.url, "--user", name]
    password = {"DAIG_PASSWORD": PASSWORD}

    balance = run_daig(tmp_path / "vol", "credits", "balance", *login, env=password)
    assert balance.returncode == 0, balance.stderr
    assert units_text(granted + earned) in balance.stdout and units_text(earned) in balance.stdout
    assert "1 credit = 10^6 samples x epochs x model parameters" in balance.stdout

    history = run_daig(tmp_path / "vol", "credits", "history")  # the login is remembered
    assert history.returncode == 0, history.stderr
    for amount in paid.values():
        assert units_text(amount, signed=True) in history.stdout
    assert "+500.00" in history.stdout and "sign-up grant" in history.stdout

    board = run_daig(tmp_path / "vol", "leaderboard", str(started.id))
    assert board.returncode == 0, board.stderr
    assert name in board.stdout and units_text(earned) in board.stdout
    overall = run_daig(tmp_path / "vol", "leaderboard", "--limit", "500")
    assert name in overall.stdout

    owner = ["--server", api_server.url, "--user", started.owner.me().username]
    cost = run_daig(tmp_path / "owner", "credits", "cost", str(started.id), *owner, env=password)
    assert cost.returncode == 0, cost.stderr
    assert f"{units_text(earned)} (3 tasks)" in cost.stdout  # the whole estimate, all spent
    missing = run_daig(tmp_path / "owner", "credits", "cost", str(uuid.uuid4()))
    assert missing.returncode == 1 and "no project" in missing.stderr
