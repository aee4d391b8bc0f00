"""The aggregator: results in batches -- checked outside any lock, recorded in one transaction.

For each batch: decode the messages (undecodable ones are dead-lettered), find those that are
hopeless anyway (already recorded, or for a task that is done or of a closed round), check
the others' deltas (``prepare``: thread pool for large ones), then record everything in one
short transaction (``recording``) fenced by partition ownership (``ownership``). After the
commit: fold accepted deltas into their rounds' running means, publish the outbox (the next
round's tasks), count, and only then ack. A batch whose transaction fails is retried, and its
messages acked only once it committed, so nothing is lost or counted twice.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from daig import metrics
from daig.blobstore import BlobStore
from daig.broker import BrokerSession, Delivery, Outcome
from daig.contract.messages import MessageRejected, TrainResult, decode
from daig.db.models import ResultStatus
from daig.dispatch import DispatchPolicy
from daig.logs import log_context
from daig.outbox import OutboxRelay
from daig.process import TRANSIENT_ERRORS
from daig.settings import Settings
from daig.states import TASK_TABLE
from daig.states.sql import state_in
from daig.topology import ResultPartitions
from daig_aggregator.consumer import Subscriptions
from daig_aggregator.facts import FactsCache
from daig_aggregator.ownership import Ownership
from daig_aggregator.prepare import Incoming, Preparer
from daig_aggregator.recording import BatchOutcome, Recorder, Verdict
from daig_aggregator.streaming import RoundFolds

log = logging.getLogger(__name__)
__all__ = ["Aggregator", "Verdict"]

# Results that cannot be accepted whatever their delta holds: no need to fetch it.
_HOPELESS = text(
    "SELECT r.message_id FROM results r WHERE r.message_id = ANY(:messages)"
    " UNION SELECT m.id"
    " FROM unnest(CAST(:messages AS uuid[]), CAST(:tasks AS uuid[])) AS m(id, task)"
    " JOIN tasks t ON t.id = m.task JOIN projects p ON p.id = t.project_id"
    f" WHERE {state_in(TASK_TABLE.final, 't.state')} OR t.round_index <> p.current_round"
)


def aggregator_id() -> str:
    return f"{socket.gethostname()[:60]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


class Aggregator:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        blobs: BlobStore,
        settings: Settings,
        *,
        name: str | None = None,
    ) -> None:
        self._sessions = sessions
        self._settings = settings
        self.name = name or aggregator_id()
        self.partitions = ResultPartitions(settings.result_partitions)
        self.ownership = Ownership(sessions, settings.result_partitions, self.name)
        self._folds = RoundFolds()
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="delta-check")
        self._io = ThreadPoolExecutor(max_workers=16, thread_name_prefix="delta-store")
        facts = FactsCache(sessions)
        self._preparer = Preparer(
            facts, blobs, self.partitions, settings.amqp_vhost, self._pool, self._io
        )
        policy = DispatchPolicy.from_settings(settings)
        self._recorder = Recorder(blobs, settings, self._folds, policy, self.name)
        self._relay = OutboxRelay(sessions)
        self.ownership.start()

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._io.shutdown(wait=True)

    # --- from the broker --------------------------------------------------------------------
    def on_batch(self, deliveries: Sequence[Delivery], broker: BrokerSession) -> list[Outcome]:
        """Handle a batch of result deliveries; one outcome per delivery."""
        outcomes = [Outcome.ACK] * len(deliveries)
        items: list[Incoming] = []
        positions: list[int] = []
        for position, delivery in enumerate(deliveries):
            try:
                message = decode(TrainResult, delivery.body, delivery.message_type)
            except MessageRejected as exc:
                log.warning("dead-lettering result message %s: %s", delivery.message_id, exc)
                outcomes[position] = Outcome.REJECT
                continue
            items.append(Incoming(message, delivery.user_id, delivery.partition))
            positions.append(position)
        if items:
            self._handle_or_isolate(items, positions, outcomes)
            self._relay.drain(broker.confirming())
        if Outcome.REQUEUE in outcomes:
            broker.pump(1.0)  # a result that breaks recording: not again at once
        return outcomes

    def _handle_or_isolate(
        self, items: list[Incoming], positions: list[int], outcomes: list[Outcome]
    ) -> None:
        """Record the batch; if it fails for a reason that is not transient (a bug, a result
        that breaks something), record its results one by one so that only the culprit is
        given back (and dead-lettered once over its delivery limit)."""
        try:
            self.handle_batch(items)
            return
        except TRANSIENT_ERRORS:
            raise
        except Exception:
            if len(items) == 1:
                log.exception("result %s could not be recorded", items[0].message.message_id)
                outcomes[positions[0]] = Outcome.REQUEUE
                return
            log.exception("a batch of %s results failed; recording them one by one", len(items))
        for item, position in zip(items, positions, strict=True):
            self._handle_or_isolate([item], [position], outcomes)

    def idle(self, broker: BrokerSession, subscriptions: Subscriptions) -> None:
        """Every second: stay alive in the database, hand over partitions beyond our share,
        and publish anything left in the outbox."""
        surplus = self.ownership.surplus()
        if surplus:
            self.ownership.release(surplus)
            subscriptions.hand_over(surplus)
        self._relay.drain(broker.confirming())

    # --- the work ---------------------------------------------------------------------------
    def handle(self, message: TrainResult, *, sender: str | None) -> Verdict | None:
        """Record one result published by broker user ``sender`` (a batch of one); None if it
        was already recorded. A sender other than the provider's own broker user gets the
        result rejected, as it would off the broker."""
        return self.handle_batch([Incoming(message, sender)])[0]

    def handle_batch(self, items: Sequence[Incoming]) -> list[Verdict | None]:
        """Check and record ``items`` in one transaction; their verdicts, in order."""
        hopeless = self._hopeless(items)
        prepared = self._preparer.prepare(items, hopeless)
        with self._sessions.begin() as session:
            self.ownership.fence(session, {i.partition for i in items if i.partition is not None})
            outcome = self._recorder.record(session, prepared)
        self._after_commit(items, outcome)
        return outcome.verdicts

    def _hopeless(self, items: Sequence[Incoming]) -> set[uuid.UUID]:
        with self._sessions() as session:
            rows = session.execute(
                _HOPELESS,
                {
                    "messages": [i.message.message_id for i in items],
                    "tasks": [i.message.task_id for i in items],
                },
            )
            return {row[0] for row in rows}

    def _after_commit(self, items: Sequence[Incoming], outcome: BatchOutcome) -> None:
        for key, norm in outcome.norms:
            self._recorder.norms.add(key, norm)
        for accepted in outcome.accepted:
            self._folds.add(accepted.key, accepted.result_id, accepted.delta, accepted.samples)
        for key in outcome.closed:
            self._folds.forget(key)
        for item, verdict in zip(items, outcome.verdicts, strict=True):
            if verdict is not None:
                with log_context(project=item.message.project_id, round=item.message.round):
                    _count(verdict)


def _count(verdict: Verdict) -> None:
    """Metrics of a recorded result (after its commit, so a rolled-back one never counts)."""
    if verdict.status == ResultStatus.ACCEPTED:
        metrics.RESULTS_ACCEPTED.inc()
    elif verdict.status == ResultStatus.HELD:
        pass  # counted as its shard settles (daig_validations)
    else:
        metrics.RESULTS_REJECTED.labels(str(verdict.reason or verdict.status)).inc()
    if verdict.round_closed:
        metrics.ROUNDS_CLOSED.inc()
