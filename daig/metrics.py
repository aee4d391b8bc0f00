"""Prometheus metrics of DAIG's server roles: the series each role updates, and serving them.

Every series lives in prometheus_client's default registry. The API serves them at its own
``/metrics``; the scheduler and the aggregator serve ``/metrics`` and ``/healthz`` on
``DAIG_METRICS_PORT`` (see ``serve``). Series names are listed in docs/operator-guide.md.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import Counter, Histogram, disable_created_metrics, make_wsgi_app
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector

from daig.db.models import RejectReason

log = logging.getLogger(__name__)
disable_created_metrics()  # the *_created series only double what operators read

# Scheduler
TASKS_PUBLISHED = Counter(
    "daig_tasks_published",
    "Task messages published from the outbox (first dispatches, refills and re-issues)",
)
TASKS_REISSUED = Counter(
    "daig_tasks_reissued",
    "Tasks given out again, by why: lease_expired, straggler or unclaimed (message lost)",
    ["reason"],
)

for _reason in ("lease_expired", "straggler", "unclaimed"):
    TASKS_REISSUED.labels(_reason)  # exported as 0 before the first re-issue
BLACK_HOLES_REVOKED = Counter(
    "daig_black_holes_revoked",
    "Provider accounts quarantined, and their broker user deleted, for taking task messages "
    "without claiming them",
)

# API
TASKS_CLAIMED = Counter("daig_tasks_claimed", "Claims the API granted")
CLAIMS_REFUSED = Counter("daig_claims_refused", "Claims the API refused, by reason", ["reason"])
# What services/api/daig_api/claims.py refuses a claim for; exported as 0 until it happens.
for _reason in (
    "unknown_task",
    "project_not_running",
    "stale_round",
    "task_done",
    "task_claimed",
    "contributor_cap",
    "quarantined",
    "own_replica",
):
    CLAIMS_REFUSED.labels(_reason)
CLAIM_SECONDS = Histogram(
    "daig_claim_duration_seconds",
    "Time the API took to answer a claim (granted or refused)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
CLAIM_WAIT_SECONDS = Histogram(
    "daig_claim_wait_seconds",
    "Time from a task's publication to its claim (how long work waits for a provider)",
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0),
)
UPLOAD_BYTES = Counter(
    "daig_api_upload_bytes", "Request body bytes the API received, by route group", ["route"]
)
DOWNLOAD_BYTES = Counter(
    "daig_api_download_bytes", "Response body bytes the API sent, by route group", ["route"]
)

# Aggregator
ROUNDS_CLOSED = Counter("daig_rounds_closed", "Rounds closed: new global weights written")
RESULTS_ACCEPTED = Counter("daig_results_accepted", "Results accepted into a round")
VALIDATIONS = Counter(
    "daig_validations",
    "Replicated tasks settled, by outcome: agreed (first two agreed), majority (a third "
    "replica decided), unverified (one trust group only), inconclusive (no majority)",
    ["outcome"],
)
for _outcome in ("agreed", "majority", "unverified", "inconclusive"):
    VALIDATIONS.labels(_outcome)
REPLICAS_MADE = Counter("daig_replicas_made", "Replica tasks made, by why", ["why"])
for _why in ("claim", "disagreement", "replacement"):
    REPLICAS_MADE.labels(_why)
QUARANTINES = Counter("daig_quarantines", "Provider accounts quarantined for an outvoted result")
RESULTS_REJECTED = Counter(
    "daig_results_rejected", "Results rejected (or reported failed), by reason", ["reason"]
)
for _reason in RejectReason:
    RESULTS_REJECTED.labels(_reason.value)
DELTA_BYTES = Counter(
    "daig_aggregator_delta_bytes",
    "Delta bytes the aggregator read, by how they came: inline (in the message) or blob",
    ["via"],
)


def route_group(path: str) -> str:
    """A bounded label for a request path (never ids: they would make one series each)."""
    parts = path.strip("/").split("/")
    if len(parts) >= 3 and parts[:2] == ["v1", "blobs"]:
        return "blobs"
    if len(parts) >= 4 and parts[:2] == ["v1", "projects"]:
        return {"files": "files", "model": "model"}.get(parts[3], "projects")
    if len(parts) >= 2 and parts[0] == "v1":
        return parts[1] if parts[1] in {"projects", "tasks", "claims", "auth", "provider"} else "v1"
    return "other"


class QueueDepths(Collector):
    """``daig_queue_messages{queue}``: messages ready in each DAIG queue, read at scrape time."""

    def __init__(self, depths: Callable[[], dict[str, int]]) -> None:
        self._depths = depths

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "daig_queue_messages", "Messages ready in each DAIG queue", labels=["queue"]
        )
        try:
            for queue, depth in sorted(self._depths().items()):
                family.add_metric([queue], depth)
        except Exception as exc:  # an unreachable broker must not break the scrape
            log.warning("queue depths unavailable: %s", exc or type(exc).__name__)
        yield family


def register_queue_depths(amqp_url: str, partitions: int) -> None:
    """Report queue depths from this process (idempotent per process)."""
    from daig.broker import queue_depths

    global _queue_collector
    with _lock:
        if _queue_collector is None:
            _queue_collector = QueueDepths(lambda: queue_depths(amqp_url, partitions))
            REGISTRY.register(_queue_collector)


_queue_collector: QueueDepths | None = None
_lock = threading.Lock()

HealthCheck = Callable[[], dict[str, Any]]


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib's name
        pass


def _app(health: HealthCheck) -> Callable[..., Iterator[bytes]]:
    metrics = make_wsgi_app()

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        if environ.get("PATH_INFO") == "/healthz":
            try:
                report = health()
            except Exception as exc:
                report = {"status": "degraded", "error": str(exc)}
            ok = report.get("status") == "ok"
            body = json.dumps(report).encode()
            start_response(
                "200 OK" if ok else "503 Service Unavailable",
                [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
            )
            return iter([body])
        return iter(metrics(environ, start_response))

    return app


def serve(port: int, health: HealthCheck, host: str = "0.0.0.0") -> WSGIServer:
    """Serve ``/metrics`` and ``/healthz`` on ``port`` from a daemon thread."""
    server = make_server(host, port, _app(health), handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    log.info("metrics and health on http://%s:%s/metrics", host, server.server_port)
    return server


class BrokerLink:
    """Remembers the consumer's current broker connection; pass ``on_connect`` to the consumer."""

    def __init__(self) -> None:
        self._session: Any = None

    def on_connect(self, session: Any) -> None:
        self._session = session

    @property
    def connected(self) -> bool:
        session = self._session
        return session is not None and bool(session.connection.is_open)


def role_health(engine: Any, link: BrokerLink) -> HealthCheck:
    """``/healthz`` of a consumer role: the database answers and the consumer is connected.

    The report has the API's shape, so ``daig health --server`` reads it too.
    """
    from sqlalchemy import text

    def check() -> dict[str, Any]:
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            database: dict[str, Any] = {"ok": True}
        except Exception as exc:
            database = {"ok": False, "error": str(exc).splitlines()[0]}
        broker: dict[str, Any] = (
            {"ok": True} if link.connected else {"ok": False, "error": "not connected"}
        )
        ok = database["ok"] and broker["ok"]
        return {"status": "ok" if ok else "degraded", "database": database, "broker": broker}

    return check
