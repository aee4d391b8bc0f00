"""``daig provider``: volunteer this machine until stopped (Ctrl-C gives the task back)."""

from __future__ import annotations

import getpass
import logging
import os
from typing import Any

from daig import tempdirs
from daig.logs import setup_logging
from daig.signals import stop_on_signals
from provider_agent.agent import ProviderAgent
from provider_agent.config import AgentConfig

log = logging.getLogger(__name__)


def run(config: AgentConfig) -> None:
    stop = stop_on_signals()
    tempdirs.remove_stale()  # left by agents killed outright
    ProviderAgent(config, stop).run()


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--server", required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password-file", help="read the password from this file's first line")
    parser.add_argument("--password", help=argparse.SUPPRESS)  # deprecated: `ps` shows it
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--memory-mb", type=int, default=None)
    parser.add_argument("--idle-minutes", type=float, default=None)
    parser.add_argument("--hours", default=None, help="e.g. 22:00-07:00")
    parser.add_argument("--on-battery", action="store_true", help="keep working on battery")
    args = parser.parse_args()
    setup_logging(process="provider")
    run(
        AgentConfig(
            server=args.server,
            username=args.user,
            password=_password(parser, args),
            threads=args.threads,
            memory_mb=args.memory_mb,
            idle_minutes=args.idle_minutes,
            hours=args.hours,
            pause_on_battery=not args.on_battery,
        )
    )


def _password(parser: Any, args: Any) -> str:
    """From --password-file, else DAIG_PASSWORD, else a hidden prompt (``--password``: warned)."""
    if args.password_file:
        try:
            with open(args.password_file, encoding="utf-8") as file:
                password = file.readline().rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as exc:
            parser.error(f"--password-file: cannot read it ({exc})")
        if not password:
            parser.error(f"--password-file {args.password_file}: the first line is empty")
        return password
    if args.password:
        log.warning(
            "--password is deprecated (`ps` shows it): use --password-file or DAIG_PASSWORD"
        )
        return str(args.password)
    return os.environ.get("DAIG_PASSWORD") or getpass.getpass(f"Password for {args.user}: ")


if __name__ == "__main__":
    main()
