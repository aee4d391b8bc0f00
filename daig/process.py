"""What every DAIG process does at start: stop (cleanly) on signals, wait for Postgres.

A clean stop matters beyond the work in hand: temporary directories (``daig.tempdirs``) are
removed at exit, which Python skips when SIGTERM kills it with no handler installed.
"""

from __future__ import annotations

import logging
import signal
import threading

from botocore.exceptions import ConnectionError as BotoConnectionError
from sqlalchemy import Engine, text
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from tenacity import before_sleep_log, retry, stop_after_delay, wait_exponential

log = logging.getLogger(__name__)

# Failures that pass when a dependency comes back (database or S3 restarting): retried in
# place by consumers, never counted against a message's delivery limit.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OperationalError,
    InterfaceError,
    PoolTimeout,
    BotoConnectionError,
    ConnectionError,
)


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


def wait_for_database(engine: Engine, *, seconds: float = 120.0) -> None:
    """Block until the database answers (bounded, with backoff)."""

    @retry(
        stop=stop_after_delay(seconds),
        wait=wait_exponential(multiplier=0.5, max=5),
        before_sleep=before_sleep_log(log, logging.WARNING),
        reraise=True,
    )
    def _ping() -> None:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    _ping()
