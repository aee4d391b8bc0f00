"""A provider agent whose task thread dies: its trainer raises on its first ``--failures`` tasks.

Fault injection for ``test_broken_provider.py``, as a real process: it claims tasks like any
provider, then its trainer raises an unexpected exception (as a trainer that lacked an argument
the agent passes did), and trains normally after that many. Run as ``python broken_provider.py
--server URL --user U --failures N`` with the password in ``DAIG_PASSWORD``.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from daig.logs import setup_logging
from daig.signals import stop_on_signals
from provider_agent.agent import ProviderAgent
from provider_agent.config import AgentConfig
from provider_agent.trainer import Trainer, TrainOutcome


class BrokenTrainer(Trainer):
    def __init__(self, failures: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.failures = failures

    def run(self, job: Any, **kwargs: Any) -> TrainOutcome:
        if self.failures > 0:
            self.failures -= 1
            raise TypeError("BrokenTrainer.run() got an unexpected keyword argument 'suspender'")
        return super().run(job, **kwargs)


def main() -> None:
    parser = argparse.ArgumentParser()
    for option in ("--server", "--user"):
        parser.add_argument(option, required=True)
    parser.add_argument("--failures", type=int, required=True)
    args = parser.parse_args()
    setup_logging(process="broken-provider")
    agent = ProviderAgent(
        AgentConfig(server=args.server, username=args.user, password=os.environ["DAIG_PASSWORD"]),
        stop_on_signals(),
    )
    agent._trainer = BrokenTrainer(args.failures)
    agent.run()


if __name__ == "__main__":
    main()
