"""``daig scheduler``: reconcile projects on events and every tick; record dead letters;
delete the deltas of projects ended longer ago than the retention; quarantine and revoke
volunteers whose agents swallow task messages (``blackholes``)."""

from __future__ import annotations

import threading

from daig import tempdirs
from daig.blobstore import open_blob_store
from daig.broker import run_consumer
from daig.db.session import make_engine, make_sessionmaker
from daig.logs import setup_logging
from daig.metrics import BrokerLink, register_queue_depths, role_health, serve
from daig.process import TRANSIENT_ERRORS, wait_for_database
from daig.settings import Settings
from daig.signals import stop_on_signals
from daig.topology import DEAD, EVENTS
from daig_scheduler.blackholes import BlackHoleWatch
from daig_scheduler.deadletters import DeadLetterRecorder
from daig_scheduler.handlers import Scheduler
from daig_scheduler.retention import Retention


def main() -> None:
    settings = Settings()
    setup_logging(settings.log_level, json_lines=settings.log_json, process="scheduler")
    stop = stop_on_signals()
    tempdirs.remove_stale()  # left by DAIG processes killed outright
    engine = make_engine(settings.database_url)
    wait_for_database(engine)
    sessions = make_sessionmaker(engine)
    retention = Retention(sessions, open_blob_store(settings), settings)
    scheduler = Scheduler(sessions, settings, retention)
    recorder = DeadLetterRecorder(sessions)
    link = BrokerLink()
    if settings.metrics_port is not None:
        register_queue_depths(settings.amqp_url, settings.result_partitions)
        serve(settings.metrics_port, role_health(engine, link))
    # One connection per thread: dead letters are consumed beside the main event loop.
    dead_letters = threading.Thread(
        target=run_consumer,
        args=(settings.amqp_url, DEAD.queue, recorder.on_dead, stop),
        kwargs={
            "prefetch": 10,
            "transient": TRANSIENT_ERRORS,
            "partitions": settings.result_partitions,
        },
        name="dead-letters",
        daemon=True,
    )
    dead_letters.start()
    watch = None
    if settings.black_hole_detection:
        # Its own thread: a slow management API must not hold up the tick.
        watch = threading.Thread(
            target=BlackHoleWatch(sessions, settings).run,
            args=(stop,),
            name="black-holes",
            daemon=True,
        )
        watch.start()
    try:
        run_consumer(
            settings.amqp_url,
            EVENTS.queue,
            scheduler.on_event,
            stop,
            prefetch=10,
            idle=scheduler.tick,
            idle_seconds=settings.scheduler_tick_seconds,
            transient=TRANSIENT_ERRORS,
            on_connect=link.on_connect,
            partitions=settings.result_partitions,
        )
    finally:
        stop.set()
        dead_letters.join(10)
        if watch is not None:
            watch.join(15)
        engine.dispose()


if __name__ == "__main__":
    main()
