"""Stop a long-running process cleanly: SIGTERM and SIGINT set an Event its loops watch.

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
