"""Publishing result messages: with the broker's confirm before the task is acked, or, when the
broker connection is gone, kept and published first thing after reconnecting."""

from __future__ import annotations

import logging

from pika.exceptions import AMQPConnectionError, AMQPError

from daig.broker import BrokerSession
from daig.contract.messages import TrainResult
from daig.topology import Route

log = logging.getLogger(__name__)


class Outbox:
    """Results on their way to the broker, stamped with our broker user (``broker_user``,
    set once signed in), which RabbitMQ checks against the connection's."""

    def __init__(self) -> None:
        self.broker_user = ""
        self._unsent: list[tuple[Route, TrainResult]] = []

    def send(
        self, route: Route, result: TrainResult, broker: BrokerSession, *, broker_broken: bool
    ) -> None:
        """Publish with confirms, or keep it for after the reconnect if the broker is gone
        (then raise ``AMQPConnectionError``: the task message cannot be acked)."""
        if not broker_broken:
            try:
                # Confirmed before the task is acked.
                broker.publish(route, result, user_id=self.broker_user)
                return
            except AMQPError as exc:
                log.warning("task %s: publishing failed (%s)", result.task_id, exc)
        self._unsent.append((route, result))
        # The task message cannot be acked on a dead channel: reconnect; the broker gives it
        # back, and by then our result is published (so the task is done or ours).
        raise AMQPConnectionError("broker connection lost with a result to publish")

    def publish_unsent(self, broker: BrokerSession) -> None:
        """Publish what could not be sent before, oldest first."""
        while self._unsent:
            route, result = self._unsent[0]
            broker.publish(route, result, user_id=self.broker_user)
            log.info("task %s: result published after reconnecting", result.task_id)
            self._unsent.pop(0)
