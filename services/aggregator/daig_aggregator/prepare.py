"""Before the transaction: who sent each result, where it was routed, and its delta, checked.

Everything here runs outside any database transaction or lock: the sender and partition
checks, fetching the delta (from the message or the blob store), its sha256, decoding and
norm. Large deltas are checked in a thread pool -- hashing and numpy release the GIL -- so
the consumer thread is never held hostage by them. What can only be decided against the
database (is the task current, not done, the claim this provider's) is left to
``recording``, which applies a rejection found here only after its own checks passed, so a
result is rejected for the same reason as if everything ran in one place.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass

from daig import keys, metrics
from daig.blobstore import BlobStore
from daig.contract.messages import TrainingStatus, TrainResult
from daig.db.models import RejectReason
from daig.topology import ResultPartitions, provider_broker_user
from daig.weights.stream import BufferLike
from daig_aggregator.deltas import CheckedDelta, DeltaRejected, check_delta
from daig_aggregator.facts import FactsCache, ProjectFacts

POOL_MIN_BYTES = 1024 * 1024  # smaller deltas are checked on the consumer thread


class Rejection(Exception):
    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Incoming:
    """A result message and where it came from.

    ``sender`` is the publisher's broker user as validated by RabbitMQ (None: it set none);
    it must be the broker user of the message's ``provider_id``, or the result is rejected
    (``wrong_provider``). There is no way around that check: tests that hand results in
    directly give the sender the broker would have validated.
    """

    message: TrainResult
    sender: str | None
    partition: int | None = None  # the partition queue it came from (None: handed directly)


@dataclass(frozen=True)
class Prepared:
    """A result with what was found before the transaction: a rejection, or its delta."""

    incoming: Incoming
    early: Rejection | None = None  # decides the result before any database check
    late: Rejection | None = None  # applies only if the database checks pass
    delta: CheckedDelta | None = None
    inline_key: str | None = None  # where a delta that came inline is stored
    inline_bytes: bytes | None = None

    @property
    def message(self) -> TrainResult:
        return self.incoming.message


class Preparer:
    def __init__(
        self,
        facts: FactsCache,
        blobs: BlobStore,
        partitions: ResultPartitions,
        vhost: str,
        pool: Executor,
        io: Executor,
    ) -> None:
        self._facts = facts
        self._blobs = blobs
        self._partitions = partitions
        self._vhost = vhost
        self._pool = pool
        self._io = io

    def prepare(self, items: Sequence[Incoming], hopeless: set[uuid.UUID]) -> list[Prepared]:
        """Check every result; skip fetching deltas of ``hopeless`` messages (already handled,
        or for a task the database will refuse anyway)."""
        jobs: list[Future[Prepared] | _Done] = []
        for item in items:
            facts = self._facts.get(item.message.project_id)
            big = facts is not None and facts.schema.nbytes >= POOL_MIN_BYTES
            skip = item.message.message_id in hopeless
            if big and not skip:
                jobs.append(self._pool.submit(self._prepare_one, item, facts, skip))
            else:
                jobs.append(_Done(self._prepare_one(item, facts, skip)))
        prepared = [job.result() for job in jobs]
        self._store_inline(prepared)
        return prepared

    def _store_inline(self, prepared: list[Prepared]) -> None:
        """Keep deltas that came inside their message like uploaded ones, durably, before the
        transaction that may accept them (round closes and audits read them). Written side by
        side: each waits for the disk, and the disk takes them together."""
        writes = [
            self._io.submit(self._blobs.put_bytes, p.inline_key, p.inline_bytes)
            for p in prepared
            if p.inline_key is not None and p.inline_bytes is not None
        ]
        for write in writes:
            write.result()

    def _prepare_one(self, item: Incoming, facts: ProjectFacts | None, skip: bool) -> Prepared:
        try:
            self._check_route(item)
        except Rejection as rejection:
            return Prepared(item, early=rejection)
        message = item.message
        if skip or facts is None or message.status != TrainingStatus.TRAINED:
            return Prepared(item)
        try:
            delta, inline = self._fetch_and_check(message, facts)
        except Rejection as rejection:
            return Prepared(item, late=rejection)
        if inline is None:
            return Prepared(item, delta=delta)
        return Prepared(item, delta=delta, inline_key=message.blob_key, inline_bytes=inline)

    def _check_route(self, item: Incoming) -> None:
        message = item.message
        expected = provider_broker_user(message.provider_id, self._vhost)
        if item.sender != expected:
            raise Rejection(
                RejectReason.WRONG_PROVIDER,
                f"published by broker user {item.sender or '(none)'}, not {expected}",
            )
        if item.partition is not None:
            owner = self._partitions.of(message.project_id)
            if item.partition != owner:
                raise Rejection(
                    RejectReason.WRONG_PARTITION,
                    f"published with routing key result.{item.partition}; this project's "
                    f"results go to result.{owner} (the claim grant's result_routing_key)",
                )

    def _fetch_and_check(
        self, message: TrainResult, facts: ProjectFacts
    ) -> tuple[CheckedDelta, bytes | None]:
        """The checked delta, and its bytes if they came inline (to be stored)."""
        if message.schema_hash != facts.schema_hash:
            raise Rejection(
                RejectReason.SCHEMA_MISMATCH, "the delta was computed for another model"
            )
        key = keys.result_key(message.project_id, message.round, message.task_id, message.claim_id)
        if message.blob_key != key:
            raise Rejection(RejectReason.BAD_DELTA, f"the delta must be stored at {key}")
        inline = _inline_bytes(message.inline_delta) if message.inline_delta else None
        data = inline if inline is not None else self._uploaded(key, facts.max_delta_bytes)
        try:
            delta = check_delta(
                data,
                sha256=message.sha256 or "",
                schema=facts.schema,
                max_bytes=facts.max_delta_bytes,
            )
        except DeltaRejected as exc:
            raise Rejection(exc.reason, exc.detail) from exc
        return delta, inline

    def _uploaded(self, key: str, limit: int) -> BufferLike:
        size = self._blobs.size(key)
        if size is None:
            raise Rejection(RejectReason.MISSING_BLOB, "no delta was uploaded")
        if size > limit:
            raise Rejection(RejectReason.BAD_DELTA, f"the delta is {size} bytes, too large")
        data = self._blobs.get_buffer(key)  # the local store maps the file: no copy
        metrics.DELTA_BYTES.labels("blob").inc(len(data))
        return data


def _inline_bytes(encoded: str) -> bytes:
    try:
        data = base64.b64decode(encoded, validate=True)
    except ValueError as exc:
        raise Rejection(RejectReason.BAD_DELTA, "the inline delta is not base64") from exc
    metrics.DELTA_BYTES.labels("inline").inc(len(data))
    return data


class _Done:
    """A result computed on the spot, with the interface of a future."""

    def __init__(self, value: Prepared) -> None:
        self._value = value

    def result(self) -> Prepared:
        return self._value
