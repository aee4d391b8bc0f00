"""A task's files, through the grant's presigned URLs: the model (cached by its digest), the
round's global weights (inline in the grant for small models, else downloaded) and the shard's
rows (cached), fetched side by side; and the upload of the delta."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from daig.contract.http import ClaimGrant, RemoteArray
from daig.planning import task_seed
from provider_agent import fetch
from provider_agent.cache import ShardCache
from provider_agent.trainer import RowsLike, TrainJob


class TaskFiles:
    """Fetches and uploads a task's files, keeping models and shards under ``cache_dir``."""

    def __init__(self, cache_dir: Path, shard_cache_mb: int) -> None:
        self._http = httpx.Client(timeout=120.0)
        self._models = cache_dir / "models"
        self.shards = ShardCache(cache_dir / "shards", shard_cache_mb)

    def model(self, grant: ClaimGrant) -> Path:
        """The project's model file, from the cache if we have it."""
        return fetch.cached_model(self._http, grant.model_url, grant.model_sha256, self._models)

    def job(self, grant: ClaimGrant, model: Path, work: Path) -> TrainJob:
        """Fetch the weights and the shard's rows into ``work``: the training job."""
        with ThreadPoolExecutor(max_workers=3, thread_name_prefix="fetch") as pool:
            weights = pool.submit(self._weights, grant, work / "w.dwt")
            x = pool.submit(self._shard, grant, "data", grant.data, work / "x.npy")
            y = pool.submit(self._shard, grant, "labels", grant.labels, work / "y.npy")
            paths = weights.result(), x.result(), y.result()
        return TrainJob(
            model_path=str(model),
            model_sha256=grant.model_sha256,
            weights_path=str(paths[0]),
            weight_schema=grant.weight_schema,
            x_path=str(paths[1]),
            y_path=str(paths[2]),
            epochs=grant.epochs,
            batch_size=grant.batch_size,
            validation_split=grant.validation_split,
            delta_path=str(work / "delta.dwt"),
            delta_codec=grant.delta_codec,
            seed=task_seed(grant.project_id, grant.round, grant.shard),
        )

    def upload(self, grant: ClaimGrant, delta: bytes) -> None:
        """Put the delta where the grant says; ``FetchUnavailable`` if worth trying again."""
        try:
            response = self._http.put(grant.result_url, content=delta)
        except httpx.TransportError as exc:
            raise fetch.FetchUnavailable(f"result upload failed: {exc}") from exc
        if response.status_code >= 500:
            raise fetch.FetchUnavailable(f"result upload got HTTP {response.status_code}")
        if response.status_code >= 300:
            raise fetch.FetchError(f"result upload refused with HTTP {response.status_code}")

    def close(self) -> None:
        self._http.close()

    def _weights(self, grant: ClaimGrant, target: Path) -> Path:
        """The round's global weights: inside the grant for small models, else downloaded."""
        if grant.weights_inline is not None:
            return fetch.write_inline(grant.weights_inline, target)
        return fetch.download(self._http, grant.weights_url, target)

    def _shard(self, grant: ClaimGrant, kind: str, remote: RemoteArray, target: Path) -> Path:
        key = f"{grant.project_id}/{kind}-{remote.byte_start}-{remote.byte_end}.npy"
        if not self.shards.get(key, target):
            fetch.shard(self._http, remote, target)
            self.shards.put(key, target)
        return target


def rows_like(grant: ClaimGrant) -> RowsLike:
    """The task's rows as far as tracing the model's training step is concerned."""
    return RowsLike(
        x_dtype=grant.data.dtype,
        x_row_shape=list(grant.data.row_shape),
        y_dtype=grant.labels.dtype,
        y_row_shape=list(grant.labels.row_shape),
        validation=grant.validation_split > 0,
    )
