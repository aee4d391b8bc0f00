"""``/healthz``: is the database reachable, is the broker, how deep are the queues."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy import text

from daig.broker import queue_depths

router = APIRouter(tags=["health"])


def _database(request: Request) -> dict[str, Any]:
    try:
        with request.app.state.sessionmaker() as session:
            session.execute(text("SELECT 1"))
        return {"ok": True}
    except Exception as exc:
        return {"ok": False, "error": str(exc).splitlines()[0]}


def _broker(request: Request) -> dict[str, Any]:
    try:
        settings = request.app.state.settings
        return {"ok": True, "queues": queue_depths(settings.amqp_url, settings.result_partitions)}
    except Exception as exc:
        return {"ok": False, "error": str(exc) or type(exc).__name__}


@router.get("/healthz")
async def healthz(request: Request) -> JSONResponse:
    """Reachability of the database and the broker, and queue depths."""
    database = await run_in_threadpool(_database, request)
    broker = await run_in_threadpool(_broker, request)
    ok = database["ok"] and broker["ok"]
    body = {"status": "ok" if ok else "degraded", "database": database, "broker": broker}
    return JSONResponse(body, status_code=200 if ok else 503)
