"""Stop a process cleanly: SIGTERM and SIGINT set an Event a long-running loop watches, or
SIGTERM exits a short command as Ctrl-C would.

A clean stop matters beyond the work in hand: temporary directories (``daig.tempdirs``) are
removed at exit, which Python skips when SIGTERM kills it with no handler installed.

Apart from ``daig.process`` (which waits for Postgres and S3) so that a provider, which has no
database or S3 library installed, can use it too.
"""

from __future__ import annotations

import logging
import signal
import threading

log = logging.getLogger(__name__)


def stop_on_signals() -> threading.Event:
    """An Event set by SIGTERM or SIGINT, so loops can finish their unit of work and exit."""
    stop = threading.Event()

    def _stop(signum: int, _frame: object) -> None:
        log.info("signal %s: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    return stop


def exit_on_sigterm() -> None:
    """Turn SIGTERM into ``SystemExit`` (like Ctrl-C into ``KeyboardInterrupt``), so ``with``
    blocks, ``finally`` clauses and ``atexit`` run: Python's default is to die on the spot,
    leaving temporary directories behind. For short commands without a stop loop."""

    def _exit(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _exit)
