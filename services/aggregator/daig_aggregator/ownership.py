"""Which aggregator records each result partition: taking over, fencing, and fair shares.

The broker decides who *receives* a partition's results (one single active consumer per
partition queue); Postgres decides who may *record* them. The first statement of every batch
updates the rows of the batch's partitions: an aggregator that is not their owner of record
takes them over (``epoch`` + 1), and because that update holds the rows until the batch
commits, batches of one partition are serialized across aggregators -- an aggregator that
lost a partition (its broker connection died while it still worked) can at worst finish the
batch in hand, never interleave with the new owner's.

Aggregators also report themselves alive every few seconds; one holding more partitions than
``ceil(partitions / live aggregators)`` hands the surplus over to the others.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)
LIVE_SECONDS = 10.0  # an aggregator not seen for this long no longer counts as alive

_CREATE = text(
    "INSERT INTO aggregator_partitions (partition, epoch)"
    " SELECT n, 0 FROM generate_series(0, :count - 1) AS n ON CONFLICT DO NOTHING"
)
_FENCE = text(
    "UPDATE aggregator_partitions SET owner = :me,"
    " epoch = CASE WHEN owner IS DISTINCT FROM :me THEN epoch + 1 ELSE epoch END,"
    " changed_at = CASE WHEN owner IS DISTINCT FROM :me THEN now() ELSE changed_at END"
    " WHERE partition = ANY(:partitions) RETURNING partition, epoch"
)
_ALIVE = text(
    "INSERT INTO aggregators (id, seen_at) VALUES (:me, now())"
    " ON CONFLICT (id) DO UPDATE SET seen_at = now()"
)
_LIVE_COUNT = text(
    "SELECT count(*) FROM aggregators WHERE seen_at > now() - make_interval(secs => :seconds)"
)
_OWNED = text("SELECT partition FROM aggregator_partitions WHERE owner = :me ORDER BY partition")
_RELEASE = text(
    "UPDATE aggregator_partitions SET owner = NULL, changed_at = now()"
    " WHERE owner = :me AND partition = ANY(:partitions)"
)
_GONE = text("DELETE FROM aggregators WHERE id = :me")


class Ownership:
    def __init__(self, sessions: sessionmaker[Session], partitions: int, me: str) -> None:
        self._sessions = sessions
        self._count = partitions
        self.me = me
        self.epochs: dict[int, int] = {}  # the epoch of each partition we recorded under

    def start(self) -> None:
        with self._sessions.begin() as session:
            session.execute(_CREATE, {"count": self._count})
            session.execute(_ALIVE, {"me": self.me})

    def fence(self, session: Session, partitions: Iterable[int]) -> None:
        """Own ``partitions`` for this batch's transaction (taking them over if needed)."""
        wanted = sorted(set(partitions))
        if not wanted:
            return
        rows = session.execute(_FENCE, {"me": self.me, "partitions": wanted}).all()
        for partition, epoch in rows:
            if self.epochs.get(partition) != epoch:
                log.info(
                    "aggregator %s: recording partition %s (epoch %s)", self.me, partition, epoch
                )
            self.epochs[partition] = int(epoch)

    def surplus(self) -> list[int]:
        """Report ourselves alive; the partitions we own beyond our fair share."""
        with self._sessions.begin() as session:
            session.execute(_ALIVE, {"me": self.me})
            live = int(session.scalar(_LIVE_COUNT, {"seconds": LIVE_SECONDS}) or 1)
            owned = [int(p) for p in session.scalars(_OWNED, {"me": self.me})]
        share = math.ceil(self._count / max(1, live))
        return owned[share:] if live > 1 else []

    def release(self, partitions: list[int]) -> None:
        """Give up ``partitions`` (we hand them over to whoever the broker activates next)."""
        if not partitions:
            return
        with self._sessions.begin() as session:
            session.execute(_RELEASE, {"me": self.me, "partitions": partitions})
        for partition in partitions:
            self.epochs.pop(partition, None)
        log.info("aggregator %s: handing over partitions %s", self.me, partitions)

    def stop(self) -> None:
        """Leave cleanly: nothing owned, not alive."""
        with self._sessions.begin() as session:
            session.execute(_RELEASE, {"me": self.me, "partitions": list(range(self._count))})
            session.execute(_GONE, {"me": self.me})
