"""``daig aggregator``: record results in batches until stopped; evaluate new models beside it."""

from __future__ import annotations

import threading

from daig import tempdirs
from daig.blobstore import open_blob_store
from daig.db.session import make_engine, make_sessionmaker
from daig.logs import setup_logging
from daig.metrics import BrokerLink, role_health, serve
from daig.process import TRANSIENT_ERRORS, stop_on_signals, wait_for_database
from daig.settings import Settings
from daig_aggregator.consumer import BatchOptions, run_batches
from daig_aggregator.evaluator import Evaluator
from daig_aggregator.handlers import Aggregator


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
    # Per-round evaluation runs beside result handling, never in its way.
    evaluator = Evaluator(sessions, blobs)
    evaluating = threading.Thread(target=evaluator.run, args=(stop,), name="evaluator", daemon=True)
    evaluating.start()
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
        evaluating.join(15)
        evaluator.shutdown()  # again, in case the thread is still busy: its dir must go
        aggregator.close()
        engine.dispose()


if __name__ == "__main__":
    main()
