"""The agent's ``_prepare``: global weights inline in the grant are used instead of a download,
invalid base64 gives the task back, and the child is asked to trace for the task's rows.

No network: the model and the shard rows are already in the agent's caches, and every URL
points at a closed port (a download would fail).
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from daig.broker import Outcome
from daig.contract.http import ClaimGrant, RemoteArray
from provider_agent import fetch
from provider_agent.agent import ProviderAgent
from provider_agent.config import AgentConfig
from provider_agent.trainer import RowsLike

NOWHERE = "http://127.0.0.1:1/never"


class FakeTrainer:
    """Records what the agent asks of its training process; trains nothing."""

    def __init__(self) -> None:
        self.prepared: list[tuple[str, str, RowsLike | None]] = []

    def prepare(self, model_path: str, model_sha256: str, rows: RowsLike | None = None) -> None:
        self.prepared.append((model_path, model_sha256, rows))

    def close(self) -> None:
        pass


def _remote(array: np.ndarray) -> RemoteArray:
    return RemoteArray(
        url=NOWHERE,
        byte_start=128,
        byte_end=128 + array.nbytes,
        dtype=array.dtype.str,
        row_shape=list(array.shape[1:]),
        rows=len(array),
    )


@pytest.fixture
def agent(tmp_path: Path) -> ProviderAgent:
    agent = ProviderAgent(
        AgentConfig(server=NOWHERE, username="u", password="p", cache_dir=tmp_path / "cache")
    )
    agent._trainer = FakeTrainer()  # type: ignore[assignment]
    return agent


def _grant(agent: ProviderAgent, **extra: Any) -> ClaimGrant:
    """A grant whose model file and shard rows the agent already has in its caches."""
    model = b"not really an h5 file: the fake trainer never opens it"
    sha = hashlib.sha256(model).hexdigest()
    (agent.config.cache_dir / "models").mkdir(parents=True)
    (agent.config.cache_dir / "models" / f"{sha}.h5").write_bytes(model)
    x, y = np.zeros((3, 8), dtype=np.float32), np.arange(3, dtype=np.int64)
    project = uuid.uuid4()
    grant = {
        "claim_id": uuid.uuid4(),
        "task_id": uuid.uuid4(),
        "project_id": project,
        "round": 0,
        "lease_seconds": 30.0,
        "model_url": NOWHERE,
        "model_sha256": sha,
        "weights_url": NOWHERE,
        "weight_schema": [],
        "data": _remote(x),
        "labels": _remote(y),
        "epochs": 1,
        "batch_size": 2,
        "validation_split": 0.25,
        # What _prepare does not read.
        "shard": 0,
        "schema_hash": "",
        "result_key": "",
        "result_url": NOWHERE,
        "result_max_bytes": 0,
        "result_routing_key": "",
        "delta_codec": "fp32",
        "inline_max_bytes": 0,
    } | extra
    for kind, array in (("data", x), ("labels", y)):
        rows = agent.config.cache_dir / f"{kind}.npy"
        np.save(rows, array)
        remote = grant[kind]
        agent._files.shards.put(f"{project}/{kind}-{remote.byte_start}-{remote.byte_end}.npy", rows)
    return ClaimGrant.model_validate(grant)


def test_weights_inline_in_the_grant_are_written_instead_of_downloaded(
    agent: ProviderAgent, tmp_path: Path
) -> None:
    stream = b"DAIG weight stream bytes \x00\x01\xff"
    grant = _grant(agent, weights_inline=base64.b64encode(stream).decode())
    job = agent._prepare(grant, tmp_path)
    assert Path(job.weights_path).read_bytes() == stream
    assert np.load(job.y_path).tolist() == [0, 1, 2]
    [(model, sha, rows)] = agent._trainer.prepared  # type: ignore[attr-defined]
    assert sha == grant.model_sha256 and model.endswith(f"{sha}.h5")
    assert rows == RowsLike("<f4", [8], "<i8", [], validation=True)


def test_without_inline_weights_the_url_is_fetched(agent: ProviderAgent, tmp_path: Path) -> None:
    with pytest.raises(fetch.FetchUnavailable):  # the closed port proves it tried
        agent._prepare(_grant(agent, weights_inline=None), tmp_path)


def test_invalid_inline_weights_give_the_task_back(agent: ProviderAgent, tmp_path: Path) -> None:
    grant = _grant(agent, weights_inline="not base64!")
    with pytest.raises(fetch.FetchError, match="not valid base64"):
        agent._prepare(grant, tmp_path)

    released: list[Any] = []
    agent._client.release = released.append  # type: ignore[method-assign]
    assert agent._work(grant, broker=None) == Outcome.ACK  # type: ignore[arg-type]
    assert released == [grant.claim_id], "given back at once, like a failed download"
    assert "not valid base64" in (agent.status.last_error or "")
