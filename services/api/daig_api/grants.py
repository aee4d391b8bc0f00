"""Building a claim's grant: presigned URLs, the shard's byte ranges, small global weights inline.

Runs after the claim's transaction committed: presigning and reading the global weights need
no lock, so no claim waits for them.
"""

from __future__ import annotations

import base64
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass

from daig import keys
from daig.blobstore import BlobStore
from daig.contract.http import ClaimGrant, RemoteArray
from daig.planning import shard_rows
from daig.settings import Settings
from daig.topology import ResultPartitions
from daig.weights.stream import max_stream_bytes
from daig_api.catalog import ProjectFacts


@dataclass(frozen=True)
class ClaimedTask:
    """What the claim's transaction decided: which task, of which round, under which claim."""

    claim_id: uuid.UUID
    task_id: uuid.UUID
    round_index: int
    shard: int


class InlineWeights:
    """Global weights small enough to travel in grants, base64-encoded, by (project, version).

    Each API process reads a version from the blob store once; weights versions never change
    once written, so there is nothing to invalidate.
    """

    def __init__(self, max_bytes: int, max_entries: int = 256) -> None:
        self._max_bytes = max_bytes
        self._max_entries = max_entries
        self._cache: OrderedDict[tuple[uuid.UUID, int], str | None] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, blobs: BlobStore, facts: ProjectFacts, version: int) -> str | None:
        if self._max_bytes <= 0 or facts.schema.nbytes > self._max_bytes:
            return None
        key = (facts.id, version)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        data = blobs.get_bytes(keys.weights_key(facts.id, version))
        encoded = base64.b64encode(data).decode() if len(data) <= self._max_bytes else None
        with self._lock:
            self._cache[key] = encoded
            while len(self._cache) > self._max_entries:
                self._cache.popitem(last=False)
        return encoded


class SharedUrls:
    """Download URLs every claim of a project hands out alike (model, rows, weights), signed
    once and reused while more than half their life remains."""

    def __init__(self, max_entries: int = 4096) -> None:
        self._urls: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._max_entries = max_entries
        self._lock = threading.Lock()

    def get(self, blobs: BlobStore, key: str, ttl: int) -> str:
        now = time.monotonic()
        with self._lock:
            cached = self._urls.get(key)
            if cached is not None and cached[1] > now:
                return cached[0]
        url = blobs.presign_get(key, ttl)
        with self._lock:
            self._urls[key] = (url, now + ttl / 2)
            while len(self._urls) > self._max_entries:
                self._urls.popitem(last=False)
        return url


def build_grant(
    *,
    blobs: BlobStore,
    settings: Settings,
    facts: ProjectFacts,
    task: ClaimedTask,
    inline: InlineWeights,
    urls: SharedUrls,
) -> ClaimGrant:
    ttl = settings.presign_ttl_seconds
    start, stop = shard_rows(task.shard, facts.total_rows, facts.total_tasks)
    schema = facts.schema

    def remote(kind: str) -> RemoteArray:
        header = facts.files[kind].header
        first, last = header.byte_range(start, stop)
        return RemoteArray(
            url=urls.get(blobs, facts.files[kind].blob_key, ttl),
            byte_start=first,
            byte_end=last,
            dtype=header.dtype,
            row_shape=list(header.row_shape),
            rows=stop - start,
        )

    result_key = keys.result_key(facts.id, task.round_index, task.task_id, task.claim_id)
    max_bytes = max_stream_bytes(schema)
    model = facts.files["model"]
    return ClaimGrant(
        claim_id=task.claim_id,
        task_id=task.task_id,
        project_id=facts.id,
        project_name=facts.name,
        owner_name=facts.owner_name,
        round=task.round_index,
        shard=task.shard,
        lease_seconds=settings.lease_seconds,
        model_url=urls.get(blobs, model.blob_key, ttl),
        model_sha256=model.sha256,
        weights_url=urls.get(blobs, keys.weights_key(facts.id, task.round_index), ttl),
        weights_inline=inline.get(blobs, facts, task.round_index),
        weight_schema=facts.weight_schema,
        schema_hash=facts.schema_hash,
        data=remote("data"),
        labels=remote("labels"),
        epochs=facts.epochs,
        batch_size=facts.batch_size,
        validation_split=facts.validation_split,
        result_key=result_key,
        result_url=blobs.presign_put(result_key, ttl, max_bytes),
        result_max_bytes=max_bytes,
        result_routing_key=ResultPartitions(settings.result_partitions)
        .route_for(facts.id)
        .publish_key,
        delta_codec=facts.delta_codec,
        inline_max_bytes=settings.inline_delta_max_bytes,
    )
