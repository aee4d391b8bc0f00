"""The black-hole watch: find a volunteer whose agents swallow task messages, and revoke it.

Any provider's broker user may consume the shared tasks queue. An agent that takes task
messages and acks them without claiming costs every project a republish interval per task for
as long as it runs. Every ``DAIG_BLACK_HOLE_SAMPLE_SECONDS`` this reads, from RabbitMQ's
management API, how many messages each provider account's channels took
(``consumption.ConsumptionWindow``), and from Postgres how many claims the account made and
how many it was refused (``daig.refusals``) over the same window. An account that took at
least ``DAIG_BLACK_HOLE_MIN_MESSAGES`` and tried to claim fewer than
``DAIG_BLACK_HOLE_CLAIM_FRACTION`` of them is quarantined (``daig.standing``: no claims, and
the API makes it no broker user) and its broker user is deleted, closing its connections. An
account found quarantined (for any reason) with a channel open is revoked the same way. The
operator reviews and lifts it with ``daig quarantine``; the agent then gets its broker user
back on its next config request.

It runs in a thread of its own, so a slow management API never holds up the scheduler's tick;
an unreachable one is logged and the pass skipped.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import bindparam, text
from sqlalchemy.orm import Session, sessionmaker

from daig import metrics, refusals, standing
from daig.management import Management, ManagementUnavailable, management
from daig.settings import Settings
from daig.topology import provider_broker_user, provider_of_broker_user
from daig_scheduler.consumption import (
    BlackHolePolicy,
    ChannelCount,
    ConsumptionWindow,
    Taken,
    is_black_hole,
    reason,
)

log = logging.getLogger(__name__)

_CLAIMED = text(
    "SELECT count(*) FROM claims WHERE provider_id = :provider AND claimed_at >= :since"
)
_REFUSED = text(
    "SELECT coalesce(sum(refused), 0) FROM claim_refusals"
    " WHERE provider_id = :provider AND bucket >= :since"
)
_QUARANTINED = text(
    "SELECT provider_id FROM provider_trust"
    " WHERE quarantined_at IS NOT NULL AND provider_id IN :ids"
).bindparams(bindparam("ids", expanding=True))
_PRUNE_REFUSALS = text("DELETE FROM claim_refusals WHERE bucket < :before")


@dataclass(frozen=True)
class Revoked:
    """An account the watch quarantined (or found quarantined) and cut off the broker."""

    provider_id: int
    reason: str | None  # None: it was quarantined already
    connections_closed: int


class BlackHoleWatch:
    def __init__(self, sessions: sessionmaker[Session], settings: Settings) -> None:
        self._sessions = sessions
        self._settings = settings
        self._policy = BlackHolePolicy.from_settings(settings)
        self._window = ConsumptionWindow(self._policy.window_seconds)
        self._unavailable = False

    def taken(self, provider_id: int) -> int | None:
        """Task messages the account took within the window, as last sampled (None: none)."""
        found = self._window.taken(provider_id)
        return None if found is None else found.messages

    def run(self, stop: threading.Event) -> None:
        """Check every sample interval until ``stop`` is set (the scheduler's thread)."""
        while not stop.is_set():
            self.check_safely()
            stop.wait(self._settings.black_hole_sample_seconds)

    def check_safely(self) -> list[Revoked]:
        """One pass; a failure is logged and the pass skipped, never raised."""
        try:
            revoked = self.check(datetime.now(UTC))
        except ManagementUnavailable as exc:
            # Once per outage at WARNING: a broker without the management plugin would
            # otherwise repeat it every pass.
            level = logging.DEBUG if self._unavailable else logging.WARNING
            log.log(level, "black-hole check skipped: %s", exc)
            self._unavailable = True
        except Exception:
            log.exception("black-hole check failed; trying again next pass")
        else:
            if self._unavailable:
                log.info("black-hole check: the management API answers again")
                self._unavailable = False
            return revoked
        return []

    def check(self, now: datetime) -> list[Revoked]:
        """Sample the tasks consumers, quarantine black holes, revoke quarantined consumers."""
        vhost = self._settings.amqp_vhost
        with management(self._settings) as api:
            counts = [
                ChannelCount(channel.name, provider_id, channel.taken)
                for channel in api.channels(vhost)
                if (provider_id := provider_of_broker_user(channel.user, vhost)) is not None
            ]
            self._window.observe(now.timestamp(), counts)
            flagged = self._judge(now)
            consuming = {count.provider_id for count in counts} - set(flagged)
            revoked = [self._revoke(api, pid, why) for pid, why in flagged.items()]
            revoked += [self._revoke(api, pid, None) for pid in self._quarantined(consuming)]
        return revoked

    def _judge(self, now: datetime) -> dict[int, str]:
        """Quarantine the accounts over the threshold; their reasons, by account."""
        flagged: dict[int, str] = {}
        with self._sessions.begin() as session:
            for taken in self._window.over(self._policy.min_messages):
                claimed, refused = _attempts(session, taken)
                if not is_black_hole(taken.messages, claimed + refused, self._policy):
                    continue
                why = reason(taken, claimed, refused)
                if standing.quarantine(session, taken.provider_id, why, now=now):
                    flagged[taken.provider_id] = why
                self._window.forget(taken.provider_id)
            before = now - timedelta(seconds=2 * self._policy.window_seconds)
            session.execute(_PRUNE_REFUSALS, {"before": before})
        return flagged

    def _quarantined(self, provider_ids: set[int]) -> list[int]:
        if not provider_ids:
            return []
        with self._sessions() as session:
            return sorted(session.scalars(_QUARANTINED, {"ids": sorted(provider_ids)}))

    def _revoke(self, api: Management, provider_id: int, why: str | None) -> Revoked:
        """Delete the account's broker user and close its connections (after quarantine)."""
        username = provider_broker_user(provider_id, self._settings.amqp_vhost)
        existed = api.delete_user(username)
        closed = api.close_connections(
            username, "DAIG: this account is quarantined (see `daig standing`)"
        )
        self._window.forget(provider_id)
        if why is None and not existed and not closed:
            pass  # revoked at an earlier pass; the management API still listed its channel
        elif why is not None:
            metrics.BLACK_HOLES_REVOKED.inc()
            log.warning(
                "provider %s quarantined as a black hole: %s; broker user %s deleted, "
                "%s connection(s) closed (review and lift with `daig quarantine`)",
                provider_id,
                why,
                username,
                closed,
            )
        else:
            log.warning(
                "provider %s is quarantined but was consuming tasks: broker user %s deleted, "
                "%s connection(s) closed",
                provider_id,
                username,
                closed,
            )
        return Revoked(provider_id, why, closed)


def _attempts(session: Session, taken: Taken) -> tuple[int, int]:
    """The account's claims and refused claims since ``taken.since``."""
    since = datetime.fromtimestamp(taken.since, UTC)
    params = {"provider": taken.provider_id, "since": since}
    claimed = int(session.scalar(_CLAIMED, params) or 0)
    # Refusals are counted per bucket: the bucket holding ``since`` counts whole (generous).
    refused = int(session.scalar(_REFUSED, {**params, "since": refusals.bucket_of(since)}) or 0)
    return claimed, refused
