"""``daig provider``: volunteer this machine until stopped (Ctrl-C gives the task back)."""

from __future__ import annotations

import logging

from daig.logs import setup_logging
from daig.process import stop_on_signals
from provider_agent.agent import ProviderAgent
from provider_agent.config import AgentConfig

log = logging.getLogger(__name__)


def run(config: AgentConfig) -> None:
    stop = stop_on_signals()
    ProviderAgent(config, stop).run()


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--server", required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    setup_logging(process="provider")
    run(
        AgentConfig(
            server=args.server, username=args.user, password=args.password, threads=args.threads
        )
    )


if __name__ == "__main__":
    main()
