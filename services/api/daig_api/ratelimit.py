"""Rate limits shared by every API replica: events counted in Postgres (``rate_events``).

Two kinds of limit: a plain one refuses past ``max_events`` within the window (sign-ups); a
backoff one lets ``max_events`` events through, then makes each further attempt wait
``backoff_seconds`` after the latest event, doubled for every event past the free ones, up to
``backoff_max_seconds`` (failed logins, per account and address and per address). A failed
login's events are dated from its failure (``failed``), so a wait counts from the answer.

An attempt is counted *before* it is judged: its events are inserted and committed, then
counted. Of any number of concurrent attempts at most ``max_events`` find themselves within
the limit (each sees at least every event committed before its own), so parallel password
guesses cannot slip past the count. An attempt that is refused takes its events back, so
hammering a blocked account does not extend the block: it ends one window after the events
that caused it. The limiter owns its short transactions because its counts must be committed
before they are read; the clock is the database's, shared by every replica.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import ColumnElement, delete, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from daig.db.models import RateEvent
from daig_api.errors import ApiError

LOGIN_USER = "login_user"
LOGIN_IP = "login_ip"
SIGNUP_IP = "signup_ip"
PRUNE_BATCH = 1000  # old rows deleted per counted attempt and bucket; keeps the table small


@dataclass(frozen=True)
class Limit:
    """At most ``max_events`` events of ``bucket``/``key`` within ``window_seconds`` (0 = off);
    with ``backoff_seconds`` > 0, past them an exponential wait after the latest event instead.

    ``what`` names the limit in the refusal, e.g. "too many failed logins from this address".
    """

    bucket: str
    key: str
    max_events: int
    window_seconds: float
    what: str
    backoff_seconds: float = 0.0
    backoff_max_seconds: float = 0.0

    @property
    def window(self) -> timedelta:
        return timedelta(seconds=self.window_seconds)

    @property
    def stored_key(self) -> str:
        return _stored(self.key)


def backoff_delay(events: int, limit: Limit) -> float:
    """Seconds to wait after the latest of ``events`` earlier events (0: no wait)."""
    past = events - limit.max_events
    if past < 0:
        return 0.0
    # 2 ** 60 already exceeds any sensible maximum; capping the exponent keeps floats finite.
    return min(limit.backoff_max_seconds, limit.backoff_seconds * 2.0 ** min(past, 60))


def refusal(what: str, seconds: int) -> str:
    """The 429's detail: what was exceeded and a countdown a person can act on."""
    return f"{what}; try again in {seconds} s"


def _stored(key: str) -> str:
    """The key as a row holds it: Postgres text can't contain NUL, the column 255 characters."""
    return key.replace("\x00", "\ufffd")[:255]


@dataclass(frozen=True)
class Attempt:
    """The events counted for one attempt, to be taken back if it turns out harmless."""

    event_ids: tuple[int, ...]


class RateLimiter:
    """Counts attempts against limits; refuses with 429, ``Retry-After`` and a human detail."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def attempt(self, limits: Sequence[Limit]) -> Attempt:
        """Count one attempt against every active limit, or raise 429 if any is exceeded."""
        active = [limit for limit in limits if limit.max_events > 0]
        if not active:
            return Attempt(())
        with self._sessions.begin() as session:
            events = [RateEvent(bucket=limit.bucket, key=limit.stored_key) for limit in active]
            session.add_all(events)
            session.flush()
            ids = tuple(event.id for event in events)
            for bucket, window in {(limit.bucket, limit.window) for limit in active}:
                _prune(session, bucket, window)
        with self._sessions.begin() as session:
            waits = [(_wait(session, limit, ids), limit) for limit in active]
            seconds, over = max(waits, key=lambda wait: wait[0])
            if seconds <= 0:
                return Attempt(ids)
            session.execute(delete(RateEvent).where(RateEvent.id.in_(ids)))
        raise ApiError(
            429, refusal(over.what, seconds), "rate_limited", headers={"Retry-After": str(seconds)}
        )

    def failed(self, attempt: Attempt) -> None:
        """Date the attempt's events from its failure rather than its arrival: a wait counts
        from the answer the client got, and checking a password takes a while."""
        if attempt.event_ids:
            with self._sessions.begin() as session:
                session.execute(
                    update(RateEvent)
                    .where(RateEvent.id.in_(attempt.event_ids))
                    .values(at=func.now())
                )

    def forget(self, attempt: Attempt, *, also: Iterable[tuple[str, str]] = ()) -> None:
        """Take back an attempt's events, and every event of the ``(bucket, key)`` pairs."""
        with self._sessions.begin() as session:
            if attempt.event_ids:
                session.execute(delete(RateEvent).where(RateEvent.id.in_(attempt.event_ids)))
            for bucket, key in also:
                session.execute(
                    delete(RateEvent).where(
                        RateEvent.bucket == bucket, RateEvent.key == _stored(key)
                    )
                )


def _in_window(limit: Limit) -> ColumnElement[bool]:
    return (
        (RateEvent.bucket == limit.bucket)
        & (RateEvent.key == limit.stored_key)
        & (RateEvent.at > func.now() - limit.window)
    )


def _wait(session: Session, limit: Limit, mine: tuple[int, ...]) -> int:
    """Whole seconds this attempt must wait under ``limit`` (0: allowed now)."""
    if limit.backoff_seconds <= 0:
        count = select(func.count()).select_from(RateEvent).where(_in_window(limit))
        if int(session.scalar(count) or 0) <= limit.max_events:
            return 0
        return _seconds_until_allowed(session, limit)
    # Every other event in the window counts, including concurrent attempts not yet judged:
    # so of a burst of parallel guesses at most max_events get through.
    events, latest, now = session.execute(
        select(func.count(), func.max(RateEvent.at), func.now()).where(
            _in_window(limit), RateEvent.id.not_in(mine)
        )
    ).one()
    delay = backoff_delay(int(events), limit)
    if delay <= 0 or latest is None:
        return 0
    left = (latest + timedelta(seconds=delay) - now).total_seconds()
    return max(1, math.ceil(left)) if left > 0 else 0


def _seconds_until_allowed(session: Session, limit: Limit) -> int:
    """Whole seconds until fewer than ``max_events`` events remain in the window."""
    remaining = session.scalar(
        select(RateEvent.at + limit.window - func.now())
        .where(_in_window(limit))
        .order_by(RateEvent.at.desc())
        .offset(limit.max_events - 1)
        .limit(1)
    )
    if not isinstance(remaining, timedelta):  # none left in the window: allowed now
        return 1
    return max(1, math.ceil(remaining.total_seconds()))


def _prune(session: Session, bucket: str, window: timedelta) -> None:
    """Delete a batch of the bucket's expired events; rows another replica holds are skipped."""
    expired = (
        select(RateEvent.id)
        .where(RateEvent.bucket == bucket, RateEvent.at < func.now() - window)
        .limit(PRUNE_BATCH)
        .with_for_update(skip_locked=True)
    )
    session.execute(delete(RateEvent).where(RateEvent.id.in_(expired.scalar_subquery())))
