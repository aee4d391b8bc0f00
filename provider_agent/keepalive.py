"""Keeping a task alive while it runs: the broker connection's heartbeats and the claim's lease.

The broker may go away in the middle of a task; training carries on regardless (the result is
published after reconnecting), so a failed pump only marks the connection as broken. The lease
is renewed every third of its length; a 404/409 answer means the task is no longer ours.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from pika.exceptions import AMQPError

from daig.broker import BrokerSession
from daig.client import ClientError

log = logging.getLogger(__name__)


class TaskAbandoned(Exception):
    """The server took the task back (done elsewhere, project paused, lease lost)."""


class KeepAlive:
    def __init__(
        self, broker: BrokerSession, heartbeat: Callable[[], Any], lease_seconds: float
    ) -> None:
        self._broker = broker
        self._heartbeat = heartbeat
        self._interval = max(1.0, lease_seconds / 3)
        self._next_renewal = time.monotonic() + self._interval
        self.broker_broken = False

    def wait(self, seconds: float) -> None:
        """Sleep ``seconds`` while servicing the broker; renew the lease when it is due."""
        if self.broker_broken:
            time.sleep(seconds)
        else:
            try:
                self._broker.pump(seconds)
            except AMQPError as exc:
                log.warning("broker connection lost during the task (%s); carrying on", exc)
                self.broker_broken = True
        self._renew_if_due()

    def _renew_if_due(self) -> None:
        if time.monotonic() < self._next_renewal:
            return
        self._next_renewal = time.monotonic() + self._interval
        try:
            self._heartbeat()
        except ClientError as exc:
            if exc.status in (404, 409):
                raise TaskAbandoned(str(exc)) from exc
            log.warning("lease renewal failed (%s); will retry", exc)
