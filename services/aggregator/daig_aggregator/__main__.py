"""``daig aggregator``: record results in batches until stopped; evaluate new models beside it."""

from __future__ import annotations

import logging
import threading

from sqlalchemy.orm import Session, sessionmaker

from daig import tempdirs
from daig.blobstore import BlobStore, open_blob_store
from daig.db.session import make_engine, make_sessionmaker
from daig.keras_runtime import KERAS_EXTRA, missing_keras_modules
from daig.logs import setup_logging
from daig.metrics import BrokerLink, role_health, serve
from daig.process import TRANSIENT_ERRORS, wait_for_database
from daig.settings import Settings
from daig.signals import stop_on_signals
from daig_aggregator.consumer import BatchOptions, run_batches
from daig_aggregator.evaluator import Evaluator
from daig_aggregator.handlers import Aggregator

log = logging.getLogger(__name__)


def main() -> None:
    settings = Settings()
    setup_logging(settings.log_level, json_lines=settings.log_json, process="aggregator")
    stop = stop_on_signals()
    tempdirs.remove_stale()  # left by DAIG processes killed outright
    engine = make_engine(settings.database_url)
    wait_for_database(engine)
    sessions, blobs = make_sessionmaker(engine), open_blob_store(settings)
    aggregator = Aggregator(sessions, blobs, settings)
    link = BrokerLink()
    if settings.metrics_port is not None:
        serve(settings.metrics_port, role_health(engine, link))
    evaluator = _start_evaluator(sessions, blobs, stop)
    try:
        run_batches(
            settings.amqp_url,
            aggregator.partitions,
            aggregator.on_batch,
            stop,
            options=BatchOptions(
                prefetch=settings.aggregator_prefetch,
                batch_size=settings.aggregator_batch_size,
                transient=TRANSIENT_ERRORS,
            ),
            idle=aggregator.idle,
            on_connect=link.on_connect,
        )
    finally:
        stop.set()
        if evaluator is not None:
            thread, running = evaluator
            thread.join(15)
            running.shutdown()  # again, in case the thread is still busy: its dir must go
        aggregator.close()
        engine.dispose()


def _start_evaluator(
    sessions: sessionmaker[Session], blobs: BlobStore, stop: threading.Event
) -> tuple[threading.Thread, Evaluator] | None:
    """Per-round evaluation runs beside result handling, never in its way; without Keras
    installed it does not run, and rounds wait unevaluated for an aggregator that has it."""
    missing = missing_keras_modules()
    if missing:
        log.warning(
            "held-out evaluation is off: %s not installed here (%s)",
            " and ".join(missing),
            KERAS_EXTRA,
        )
        return None
    evaluator = Evaluator(sessions, blobs)
    thread = threading.Thread(target=evaluator.run, args=(stop,), name="evaluator", daemon=True)
    thread.start()
    return thread, evaluator


if __name__ == "__main__":
    main()
