"""``daig up`` when something is wrong: it says what, stops what it started, exits non-zero."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from daig.cluster import free_port

pytestmark = [pytest.mark.timeout(180)]


def _up(
    env: dict[str, str], tmp_path: Path, metrics_port: int = 0
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "daig", "up", "--port", str(free_port())]
        + ["--metrics-port", str(metrics_port or free_port())]
        + ["--log-dir", str(tmp_path / "logs")],
        env=os.environ | {"PYTHONUNBUFFERED": "1", "COLUMNS": "200"} | env,
        capture_output=True,
        text=True,
        timeout=150,
    )


def test_unreachable_postgres_is_named_with_how_to_start_it(tmp_path: Path) -> None:
    done = _up({"DAIG_DATABASE_URL": "postgresql+psycopg2://postgres@127.0.0.1:1/daig"}, tmp_path)
    assert done.returncode == 2
    assert "cannot reach PostgreSQL" in done.stderr and "Start it" in done.stderr
    assert not (tmp_path / "logs").exists()  # nothing was started


def test_a_role_that_dies_at_start_stops_the_others(
    database_url: str, amqp_url: str, tmp_path: Path
) -> None:
    metrics_port = free_port()
    done = _up(
        {
            "DAIG_DATABASE_URL": database_url,
            "DAIG_AMQP_URL": amqp_url,
            # the API and the aggregator refuse it when they open the blob store
            "DAIG_BLOB_URL": "ftp://example.org/blobs",
        },
        tmp_path,
        metrics_port,
    )
    assert done.returncode == 1, done.stderr
    assert "exited with" in done.stderr
    assert "DAIG_BLOB_URL 'ftp://example.org/blobs': use file:///dir or s3://" in done.stderr
    # The scheduler needs no blob store: if it got as far as consuming, it was stopped
    # politely; either way nothing answers on its metrics port any more.
    scheduler = (tmp_path / "logs" / "scheduler.log").read_text()
    if "consuming daig.scheduler.events" in scheduler:
        assert "signal 15: stopping" in scheduler
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{metrics_port}/healthz", timeout=2)
