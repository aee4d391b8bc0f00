"""Every DAIG service of the compose file runs, as a process here, with the compose environment.

No Docker engine runs on our machines, so each service's command (the image's entrypoint is
``daig``) is run as ``python -m daig_cli <command>`` with exactly the environment the compose
file gives its container (variables from deploy/.env.example), only the compose network's
addresses mapped to this machine's test services: a fresh database on the local Postgres,
a fresh vhost on the local RabbitMQ, moto's S3 for MinIO (its bucket created first, as the
minio-init service does). Services start in depends_on order; one-shot services must exit
0, the others must pass their own compose healthcheck command.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest

from daig_cli.local_infra import Database, unique_name
from daig_cli.processes import ProcessGroup, free_port
from tests.helpers.waiting import wait_until
from tests.ops.compose import Translation, compose, daig_services, read_env_file, start_order

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]

ONE_SHOT = {"migrate", "provider-account"}
SERVER_ROLES = ("api", "scheduler", "aggregator")
JSON_LOGGING = (*SERVER_ROLES, "provider")


def _command(service: dict[str, Any], translation: Translation, name: str) -> list[str]:
    return [sys.executable, "-m", "daig_cli", *translation.argv(list(service["command"]), name)]


def _healthcheck(service: dict[str, Any], translation: Translation, name: str) -> list[str]:
    test = list(service["healthcheck"]["test"])
    assert test[:2] == ["CMD", "daig"], f"{name}: healthcheck is not a daig command"
    return [sys.executable, "-m", "daig_cli", *translation.argv(test[2:], name)]


def test_each_service_starts_with_the_compose_environment(
    database_url: str, amqp_url: str, s3_endpoint: str, tmp_path: Path
) -> None:
    # A database that does not exist yet: the migrate service must create and migrate it.
    fresh_db = Database.named(database_url, unique_name("daig_test"))
    bucket = f"daig-ops-{uuid.uuid4().hex[:8]}"
    config = compose(read_env_file() | {"MINIO_BUCKET": bucket})
    services = daig_services(config)
    translation = Translation(
        database_url=fresh_db.url,
        amqp_url=amqp_url,
        s3_endpoint=s3_endpoint,
        api_port=free_port(),
        metrics_ports={name: free_port() for name in services},
    )
    env_s3 = config["services"]["minio-init"]["environment"]
    boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        aws_access_key_id=env_s3["DAIG_S3_ACCESS_KEY"],
        aws_secret_access_key=env_s3["DAIG_S3_SECRET_KEY"],
        region_name="us-east-1",
    ).create_bucket(Bucket=bucket)

    home = {
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "PYTHONUNBUFFERED": "1",
    }
    clusters: dict[str, ProcessGroup] = {}
    try:
        for name in start_order(services):
            service = services[name]
            env = translation.env(service, name) | home
            cluster = clusters[name] = ProcessGroup(env, tmp_path / "logs")
            process = cluster.start_argv(name, _command(service, translation, name))
            if name in ONE_SHOT:
                assert process.wait(180) == 0, f"{name} failed:\n{cluster.log(name)[-3000:]}"
                continue
            if "healthcheck" in service:
                _wait_healthy(cluster, name, _healthcheck(service, translation, name))
            else:
                wait_until(
                    lambda c=cluster, n=name: "consuming daig.tasks" in c.log(n),
                    120,
                    interval=1,
                    what=f"{name} to consume the task queue",
                )
        # Everything still runs together: nothing crashed after its neighbours started.
        time.sleep(2)
        for name, cluster in clusters.items():
            if name not in ONE_SHOT:
                assert cluster.processes[name].poll() is None, cluster.log(name)[-3000:]
        assert "already exists" in _rerun_one_shot(services, translation, home, tmp_path)
        _check_json_logs(clusters)
    finally:
        for cluster in clusters.values():
            cluster.stop_all()
        fresh_db.drop()


def _wait_healthy(cluster: ProcessGroup, name: str, probe: list[str]) -> None:
    """Run the service's compose healthcheck until it passes (as Docker would)."""

    def healthy() -> bool:
        assert cluster.processes[name].poll() is None, cluster.log(name)[-3000:]
        done = subprocess.run(probe, env=cluster.env, capture_output=True, timeout=60)
        return done.returncode == 0

    wait_until(healthy, 120, interval=1, what=f"{name} to pass its healthcheck")


def _rerun_one_shot(
    services: dict[str, dict[str, Any]], translation: Translation, home: dict[str, str], tmp: Path
) -> str:
    """One-shot services run again on every `docker compose up`: a second run must pass."""
    output = ""
    for name in ONE_SHOT:
        cluster = ProcessGroup(translation.env(services[name], name) | home, tmp / "rerun")
        process = cluster.start_argv(name, _command(services[name], translation, name))
        assert process.wait(120) == 0, cluster.log(name)[-3000:]
        output += cluster.log(name)
    return output


def _check_json_logs(clusters: dict[str, ProcessGroup]) -> None:
    """DAIG_LOG_JSON=true (the .env.example default): each line is one JSON object with the
    project, round and task keys."""
    for role in JSON_LOGGING:
        lines = [line for line in clusters[role].log(role).splitlines() if line.strip()]
        assert lines, f"{role} logged nothing"
        for line in lines:
            entry = json.loads(line)
            assert entry["process"] == role
            assert {"time", "level", "message", "project", "round", "task"} <= set(entry)
