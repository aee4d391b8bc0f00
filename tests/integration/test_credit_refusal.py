"""Starting a project its owner cannot pay for is refused, saying the estimate and the balance.

The API runs with a small sign-up grant (0.3 credit, 300,000 work units); the digits MLP on
10 rows for 5 epochs is estimated at 10 x 5 x its parameters (240,500 units, 0.24 credit).
"""

from __future__ import annotations

import re
import uuid

import pytest

from daig.client import ClientError
from daig.credits.units import to_credits, units_text
from daig.hyperparams import Hyperparameters
from daig.settings import Settings
from daig.weights.h5weights import read_weights
from daig.weights.schema import WeightSchema
from tests.helpers.projects import SmallData

GRANT = 300_000  # work units


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"credit_signup_grant": to_credits(GRANT)})


def _uploaded(client, digits_files, data: SmallData, params: Hyperparameters) -> str:
    project = client.create_project(f"p-{uuid.uuid4().hex[:6]}", params)
    for kind, path in (("model", digits_files.model), ("data", data.data), ("labels", data.labels)):
        client.upload_file(project.id, kind, path)
    return str(project.id)


def test_a_project_over_the_balance_is_refused_with_estimate_and_balance(
    api_server, make_user, digits_files, small_data: SmallData
) -> None:
    parameters = WeightSchema.of(read_weights(digits_files.model)).parameters
    one = 10 * 5 * parameters
    assert one < GRANT < 2 * one  # the premise of this test
    owner = make_user(api_server.url, "requestor")

    expensive = _uploaded(
        owner, digits_files, small_data, Hyperparameters(total_tasks=3, task_size=3, epochs=10)
    )
    assert owner.project_cost(expensive).estimate == to_credits(2 * one)  # known before start
    with pytest.raises(ClientError) as refused:
        owner.start(expensive)
    assert refused.value.status == 402 and refused.value.reason == "insufficient_credit"
    message = str(refused.value)
    assert f"estimated to cost {units_text(2 * one)} credits" in message
    assert f"your balance is {units_text(GRANT)} credits" in message
    assert owner.project(expensive).state == "created"  # nothing started, nothing charged

    cheap = _uploaded(owner, digits_files, small_data, Hyperparameters(total_tasks=3, task_size=3))
    assert owner.start(cheap).state == "queued"
    balance = owner.credits()
    assert (balance.balance, balance.committed, balance.available) == (
        to_credits(GRANT),
        to_credits(one),
        to_credits(GRANT - one),
    )
    # The credit promised to the first project is not there for a second one.
    second = _uploaded(owner, digits_files, small_data, Hyperparameters(total_tasks=3, task_size=3))
    with pytest.raises(ClientError, match=re.escape(f"{units_text(one)} are promised")) as again:
        owner.start(second)
    assert again.value.status == 402
    owner.cancel(cheap)  # a cancelled project promises nothing any more
    assert owner.start(second).state == "queued"
