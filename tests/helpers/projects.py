"""Small training data and started projects, as a requestor makes them over the real API;
``wait_for_end``, the requestor waiting for one to finish; ``RoundsByHand``: a project's rounds
handed in by a volunteer driven by hand, to its end.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from daig.broker import BrokerSession
from daig.client import DaigClient
from daig.contract.http import ProjectOut
from daig.hyperparams import Hyperparameters
from daig.weights.schema import WeightSchema
from daig_aggregator.recording import Verdict
from daig_scheduler.handlers import Scheduler
from tests.helpers.aggregation import DirectAggregator
from tests.helpers.results import Provider, claim_round, random_delta
from tests.helpers.waiting import wait_until


@dataclass(frozen=True)
class SmallData:
    data: Path
    labels: Path
    x: np.ndarray
    y: np.ndarray


def write_small_data(directory: Path, rows: int, features: int = 64, seed: int = 0) -> SmallData:
    """``rows`` rows of random float32 features and int64 labels, as ``.npy`` files."""
    rng = np.random.default_rng(seed)
    x = rng.random((rows, features), dtype=np.float32)
    y = rng.integers(0, 10, size=rows, dtype=np.int64)
    directory.mkdir(parents=True, exist_ok=True)
    data, labels = directory / f"x{rows}.npy", directory / f"y{rows}.npy"
    np.save(data, x, allow_pickle=False)
    np.save(labels, y, allow_pickle=False)
    return SmallData(data, labels, x, y)


def create_started_project(
    client: DaigClient, model: Path, data: SmallData, params: Hyperparameters
) -> ProjectOut:
    project = client.create_project(f"p-{uuid.uuid4().hex[:6]}", params)
    client.upload_file(project.id, "model", model)
    client.upload_file(project.id, "data", data.data)
    client.upload_file(project.id, "labels", data.labels)
    return client.start(project.id)


def wait_for_end(client: DaigClient, project_id: uuid.UUID, timeout: float = 300) -> ProjectOut:
    """The project as ``client`` sees it once done or failed (polled every second)."""
    return wait_until(
        lambda: (p := client.project(project_id)).state in ("done", "failed") and p,
        timeout,
        interval=1.0,
        what="the project to finish",
    )


@dataclass
class Started:
    """A started project (what the ``start_project`` fixture returns)."""

    owner: DaigClient
    project: ProjectOut
    id: uuid.UUID
    data: SmallData


@dataclass(frozen=True)
class HandedIn:
    """One round's results as handed to the aggregator: their blob keys and its verdicts."""

    keys: list[str]
    verdicts: list[Verdict | None]


@dataclass(frozen=True)
class RoundsByHand:
    """A volunteer's rounds handed in by the test: claims over HTTP, random deltas, the real
    aggregator and scheduler (the ``rounds_by_hand`` fixture)."""

    provider: Provider
    aggregator: DirectAggregator
    scheduler: Scheduler
    broker_session: BrokerSession
    schema: WeightSchema
    amqp_url: str

    def hand_in(self, seed: int) -> HandedIn:
        """Claim every published task and hand in a delta for each, seeded ``seed + slot``."""
        grants = claim_round(self.provider, self.amqp_url)
        verdicts = [
            self.aggregator.handle(
                self.provider.result(grant, random_delta(self.schema, seed + slot))
            )
            for slot, grant in enumerate(grants)
        ]
        return HandedIn([grant.result_key for grant in grants], verdicts)

    def end(self, started: Started, seed: int = 0) -> HandedIn:
        """Hand in the last round of ``started`` (one round to go) and reconcile: it is done."""
        handed = self.hand_in(seed)
        self.scheduler.reconcile(started.id, self.broker_session)
        assert started.owner.project(started.id).state == "done"
        return handed
