"""``/metrics``: the API process's Prometheus series (claims, bytes, and the shared registry)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

router = APIRouter(tags=["health"])


@router.get("/metrics", include_in_schema=False)
def prometheus_metrics() -> Response:
    """Prometheus text exposition (scrape it; block it at the proxy if it must stay private)."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
