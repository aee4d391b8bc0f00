"""``/healthz``: is the database reachable, is the broker, how deep are the queues."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy import text

from daig.broker import queue_depths
from daig.contract.http import Dependency, Health

router = APIRouter(tags=["health"])


def _database(request: Request) -> Dependency:
    try:
        with request.app.state.sessionmaker() as session:
            session.execute(text("SELECT 1"))
        return Dependency(ok=True)
    except Exception as exc:
        return Dependency(ok=False, error=str(exc).splitlines()[0])


def _broker(request: Request) -> Dependency:
    try:
        settings = request.app.state.settings
        queues = queue_depths(settings.amqp_url, settings.result_partitions)
        return Dependency(ok=True, queues=queues)
    except Exception as exc:
        return Dependency(ok=False, error=str(exc) or type(exc).__name__)


@router.get("/healthz", response_model=Health, responses={503: {"model": Health}})
async def healthz(request: Request) -> JSONResponse:
    """Reachability of the database and the broker, and queue depths."""
    database = await run_in_threadpool(_database, request)
    broker = await run_in_threadpool(_broker, request)
    ok = database.ok and broker.ok
    health = Health(status="ok" if ok else "degraded", database=database, broker=broker)
    # Unset fields stay out, as before: {"ok": true} for the database, no "error" when ok.
    body = health.model_dump(mode="json", exclude_none=True)
    return JSONResponse(body, status_code=200 if ok else 503)
