"""Credits a person can read: a new account's balance is the sign-up grant in credits, and it
starts the demo project (``daig demo``'s digits MLP and plan, replication on as in the demo)
four times over the real API before the fifth start is refused in credits, not in millions."""

from __future__ import annotations

import math
import uuid

import numpy as np
import pytest

from daig.client import ClientError, DaigClient
from daig.credits.pricing import project_estimate
from daig.credits.units import to_credits
from daig.settings import Settings
from daig_cli.demo import DEMO_PARAMS


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"replication": True})  # the demo runs with it on


def _demo_project(client: DaigClient, digits_files) -> uuid.UUID:
    project = client.create_project(f"digits-demo-{uuid.uuid4().hex[:4]}", DEMO_PARAMS)
    for kind in ("model", "data", "labels"):
        client.upload_file(project.id, kind, getattr(digits_files, kind))
    return project.id


def test_the_sign_up_grant_starts_the_demo_project_four_times(
    api_server, make_user, digits_files, schema
) -> None:
    grant = api_server.settings.credit_signup_grant
    requestor = make_user(api_server.url, "requestor")
    fresh = requestor.credits()
    assert fresh.balance == fresh.granted == fresh.available == grant == 500
    rows = np.load(digits_files.data, mmap_mode="r").shape[0]  # the demo uploads the same
    assert rows == 1437
    base = project_estimate(
        total_rows=rows,
        total_tasks=DEMO_PARAMS.total_tasks,
        task_size=DEMO_PARAMS.task_size,
        passes=DEMO_PARAMS.passes,
        epochs=DEMO_PARAMS.epochs,
        parameters=schema.parameters,
    )
    expected = to_credits(base + math.ceil(base * DEMO_PARAMS.verify_fraction))

    started = []
    for _ in range(4):
        project_id = _demo_project(requestor, digits_files)
        assert requestor.project_cost(project_id).estimate == expected
        requestor.start(project_id)
        started.append(project_id)
    assert 3 <= grant / expected < 5, f"the grant covers the demo {grant / expected:.1f} times"
    promised = requestor.credits()
    assert promised.committed == pytest.approx(4 * expected, abs=1e-6)
    assert promised.available == pytest.approx(grant - 4 * expected, abs=1e-6)

    fifth = _demo_project(requestor, digits_files)
    with pytest.raises(ClientError) as refused:
        requestor.start(fifth)
    assert refused.value.status == 402
    message = str(refused.value)
    assert f"estimated to cost {expected:,.2f} credits" in message
    assert f"your balance is {grant:,.2f} credits" in message
    assert f"of which {4 * expected:,.2f} are promised" in message
