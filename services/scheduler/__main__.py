"""``daig scheduler``: consume project events and reconcile every tick until stopped."""

from __future__ import annotations

from daig.broker import run_consumer
from daig.db.session import make_engine, make_sessionmaker
from daig.logs import setup_logging
from daig.process import stop_on_signals, wait_for_database
from daig.settings import Settings
from daig.topology import EVENTS
from services.scheduler.handlers import Scheduler


def main() -> None:
    settings = Settings()
    setup_logging(settings.log_level, json_lines=settings.log_json, process="scheduler")
    stop = stop_on_signals()
    engine = make_engine(settings.database_url)
    wait_for_database(engine)
    scheduler = Scheduler(make_sessionmaker(engine), settings)
    try:
        run_consumer(
            settings.amqp_url,
            EVENTS.queue,
            scheduler.on_event,
            stop,
            prefetch=10,
            idle=scheduler.tick,
            idle_seconds=settings.scheduler_tick_seconds,
        )
    finally:
        engine.dispose()


if __name__ == "__main__":
    main()
