"""``DirectAggregator``: the real aggregator, with results handed to it by the test itself.

Off the broker, the aggregator accepts a result only if RabbitMQ validated that its publisher
is the broker user of the provider the message names. A test that hands results in directly
(``handle(message)``) has no broker to validate anything, so this test double gives the sender
the broker would have validated for an honest provider. Every check still runs; only the
broker is left out. Forged senders are tested over the real broker (``test_broker_accounts``)
and in ``tests/unit/test_aggregator_prepare.py``.
"""

from __future__ import annotations

from daig.contract.messages import TrainResult
from daig.topology import provider_broker_user
from daig_aggregator.handlers import Aggregator
from daig_aggregator.recording import Verdict

# The sender RabbitMQ validates for a provider publishing its own result.
AS_ITS_PROVIDER = "(the broker user of the provider the message names)"


class DirectAggregator(Aggregator):
    """An ``Aggregator`` that tests hand results to, as published by the provider they name."""

    def handle(
        self, message: TrainResult, *, sender: str | None = AS_ITS_PROVIDER
    ) -> Verdict | None:
        if sender == AS_ITS_PROVIDER:
            sender = provider_broker_user(message.provider_id, self._settings.amqp_vhost)
        return super().handle(message, sender=sender)
