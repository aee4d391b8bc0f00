"""A provider agent whose every training result arrives ``--delay`` seconds late.

Fault injection for the straggler test, as a real process: it claims, renews its lease and
trains like any provider, then sits on the result. Run as ``python slow_provider.py --server
URL --user U --delay S`` with the password in ``DAIG_PASSWORD``.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

from daig.logs import setup_logging
from daig.signals import stop_on_signals
from provider_agent.agent import ProviderAgent
from provider_agent.config import AgentConfig
from provider_agent.trainer import Trainer, TrainOutcome


class SlowTrainer(Trainer):
    def __init__(self, delay: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.delay = delay

    def run(
        self,
        job: Any,
        *,
        wait: Any,
        should_stop: Any,
        on_progress: Any = None,
        suspender: Any = None,
    ) -> TrainOutcome:
        outcome = super().run(
            job, wait=wait, should_stop=should_stop, on_progress=on_progress, suspender=suspender
        )
        until = time.monotonic() + self.delay
        while time.monotonic() < until and not should_stop():
            wait(0.2)  # keeps heartbeats and the lease going: slow, not lost
        return outcome


def main() -> None:
    parser = argparse.ArgumentParser()
    for option in ("--server", "--user"):
        parser.add_argument(option, required=True)
    parser.add_argument("--delay", type=float, required=True)
    args = parser.parse_args()
    setup_logging(process="slow-provider")
    agent = ProviderAgent(
        AgentConfig(server=args.server, username=args.user, password=os.environ["DAIG_PASSWORD"]),
        stop_on_signals(),
    )
    agent._trainer = SlowTrainer(args.delay)
    agent.run()


if __name__ == "__main__":
    main()
