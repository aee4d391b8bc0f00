"""What every long-running server process does at start: wait for Postgres; transient errors."""

from __future__ import annotations

import logging

from botocore.exceptions import ConnectionError as BotoConnectionError
from sqlalchemy import Engine, text
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from tenacity import before_sleep_log, retry, stop_after_delay, wait_exponential

from daig.signals import stop_on_signals as stop_on_signals  # its old home; callers moved

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
