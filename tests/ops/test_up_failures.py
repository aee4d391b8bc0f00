"""Server roles and ``daig up`` on bad settings or a failing role: say what, stop, exit non-zero."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from daig_cli.processes import free_port

pytestmark = [pytest.mark.timeout(180)]


def _up(
    env: dict[str, str], tmp_path: Path, port: int = 0, metrics_port: int = 0
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "daig_cli", "up", "--port", str(port or free_port())]
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


def test_bad_settings_are_refused_before_anything_starts(tmp_path: Path) -> None:
    done = _up({"DAIG_BLOB_URL": "ftp://example.org/blobs", "DAIG_LEASE_SECONDS": "1"}, tmp_path)
    assert done.returncode == 2
    assert "DAIG_BLOB_URL 'ftp://example.org/blobs': use file:///dir or s3://" in done.stderr
    assert not (tmp_path / "logs").exists()
    done = _up({"DAIG_LEASE_SECONDS": "soon"}, tmp_path)
    assert done.returncode == 2 and "DAIG_LEASE_SECONDS: Input should be a valid number" in (
        " ".join(done.stderr.split())
    )


def test_a_role_that_dies_at_start_stops_the_others(
    database_url: str, amqp_url: str, tmp_path: Path
) -> None:
    metrics_port = free_port()
    with socket.socket() as taken:  # the API's port is in use: the API cannot start
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        done = _up(
            {"DAIG_DATABASE_URL": database_url, "DAIG_AMQP_URL": amqp_url},
            tmp_path,
            port=taken.getsockname()[1],
            metrics_port=metrics_port,
        )
    assert done.returncode == 1, done.stderr
    assert "api exited with" in done.stderr
    assert "address already in use" in done.stderr.lower()
    # The scheduler and aggregator were started too: if one got as far as consuming, it was
    # stopped politely; either way nothing answers on their metrics ports any more.
    for role, port in (("scheduler", metrics_port), ("aggregator-1", metrics_port + 1)):
        log = (tmp_path / "logs" / f"{role}.log").read_text()
        if "consuming daig." in log:
            assert "signal 15: stopping" in log, log
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)


@pytest.mark.parametrize("role", ["api", "scheduler", "aggregator"])
def test_a_role_refuses_bad_settings_naming_the_variable(role: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DAIG_SECRET_KEY"}
    done = subprocess.run(
        [sys.executable, "-m", "daig_cli", role],
        env=env | {"DAIG_ENV": "production", "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "DAIG_SECRET_KEY is the development default" in done.stderr
    assert "Traceback" not in done.stderr


def test_migrate_names_an_unreachable_database() -> None:
    """The compose file's `migrate` service: a clear line in its logs, exit 1."""
    done = subprocess.run(
        [sys.executable, "-m", "daig_cli", "migrate"],
        env=os.environ
        | {
            "DAIG_DATABASE_URL": "postgresql+psycopg2://postgres@127.0.0.1:1/daig",
            "COLUMNS": "200",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "cannot reach PostgreSQL" in done.stderr and "DAIG_DATABASE_URL" in done.stderr
    assert "Traceback" not in done.stderr
