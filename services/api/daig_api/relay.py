"""The API's outbox relay: a thread that publishes what claims staged, right after they commit.

A claim that frees a place in its project's dispatch window stages the next task's message in
the outbox; the request returns as soon as its transaction commits, and this thread, woken by
it, publishes the staged messages in batches with one wait for the broker's confirms. If the
broker is away the messages stay in the outbox; the next wake-up, the periodic drain or the
scheduler publishes them.
"""

from __future__ import annotations

import contextlib
import logging
import threading

from pika.exceptions import AMQPError
from sqlalchemy.orm import Session, sessionmaker

from daig.broker import connect
from daig.outbox import OutboxRelay
from daig.process import TRANSIENT_ERRORS
from daig.publishing import ConfirmingChannel

log = logging.getLogger(__name__)
IDLE_DRAIN_SECONDS = 5.0
COALESCE_SECONDS = 0.005
RETRY_SECONDS = 2.0


class BackgroundRelay:
    def __init__(self, sessions: sessionmaker[Session], amqp_url: str) -> None:
        self._relay = OutboxRelay(sessions)
        self._url = amqp_url
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="outbox-relay", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        """Something was staged and committed: publish it now."""
        self._wake.set()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._serve()
            except (AMQPError, OSError, *TRANSIENT_ERRORS) as exc:
                log.warning("outbox relay: %s; retrying in %.0f s", exc, RETRY_SECONDS)
                self._stop.wait(RETRY_SECONDS)
            except Exception:
                log.exception("outbox relay failed; retrying")
                self._stop.wait(RETRY_SECONDS)

    def _serve(self) -> None:
        connection = connect(self._url, heartbeat=0)
        try:
            channel = ConfirmingChannel(connection)
            while not self._stop.is_set():
                if self._wake.wait(IDLE_DRAIN_SECONDS):
                    # Let the claims committing right now join this batch: one transaction
                    # and one wait for confirms for several messages.
                    self._stop.wait(COALESCE_SECONDS)
                self._wake.clear()
                self._relay.drain(channel)
        finally:
            with contextlib.suppress(AMQPError):
                if connection.is_open:
                    connection.close()
