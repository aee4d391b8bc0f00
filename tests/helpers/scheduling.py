"""The scheduler running in threads as in production: its event consumer ticking, and the
black-hole watch sampling the broker."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from daig.broker import run_consumer
from daig.topology import EVENTS
from daig_scheduler.blackholes import BlackHoleWatch
from daig_scheduler.handlers import Scheduler


@contextmanager
def scheduling(amqp_url: str, scheduler: Scheduler, tick: float = 0.25) -> Iterator[None]:
    """The scheduler consuming events and ticking every ``tick`` seconds."""
    stop = threading.Event()
    consumer = threading.Thread(
        target=run_consumer,
        args=(amqp_url, EVENTS.queue, scheduler.on_event, stop),
        kwargs={"idle": scheduler.tick, "idle_seconds": tick},
        daemon=True,
    )
    consumer.start()
    try:
        yield
    finally:
        stop.set()
        consumer.join(10)


@contextmanager
def watching(watch: BlackHoleWatch) -> Iterator[None]:
    """The black-hole watch in its own thread, as ``daig scheduler`` runs it."""
    stop = threading.Event()
    thread = threading.Thread(target=watch.run, args=(stop,), daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(15)
