"""``daig up`` plus ``daig provider`` train a project end to end; then the metrics and logs.

The commands are the operator guide's (docs/operator-guide.md, "Without Docker"): ``daig up``
with two aggregators, ``daig signup``, two ``daig provider`` processes, a requestor's
``daig project create ... --start --wait``. After the run every role's ``/metrics`` is read
and the series the guide lists are checked against what really happened (rounds, accepted
results, claims, bytes); the JSON logs carry the project, round and task ids.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from daig.client import DaigClient
from daig.examples import held_out_accuracy
from daig_cli.cluster import LocalCluster
from daig_cli.processes import free_port
from tests.helpers.waiting import wait_until
from tests.ops.compose import DEPLOY

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

Samples = dict[str, list[tuple[dict[str, str], float]]]


def _scrape(url: str) -> Samples:
    samples: Samples = defaultdict(list)
    for family in text_string_to_metric_families(httpx.get(url, timeout=10).text):
        for sample in family.samples:
            samples[sample.name].append((sample.labels, sample.value))
    return samples


def _total(samples: list[Samples], name: str, **labels: str) -> float:
    return sum(
        value
        for scraped in samples
        for sample_labels, value in scraped.get(name, [])
        if all(sample_labels.get(k) == v for k, v in labels.items())
    )


def _free_port_pair() -> int:
    """A port p with p, p+1 and p+2 free (scheduler, aggregator-1, aggregator-2)."""
    import socket

    for _ in range(50):
        base = free_port()
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", base + 1))
                b.bind(("127.0.0.1", base + 2))
            return base
        except OSError:
            continue
    raise RuntimeError("no three consecutive free ports")


def test_daig_up_and_providers_train_a_project(
    database_url: str, amqp_url: str, digits_files, tmp_path: Path
) -> None:
    # The environment only: `daig up` starts the roles, in the same log directory.
    processes = LocalCluster.owned(
        tmp_path,
        database_url=database_url,
        amqp_url=amqp_url,
        secret="ops-test-secret-key-long-enough-for-hs256",
        # Unreplicated like the other tests that count results (test_cheating replicates).
        settings={"log_json": "true", "replication": "false"},
        env={"TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    port, metrics_port, api = processes.port, _free_port_pair(), processes.api_url
    up_argv = [sys.executable, "-m", "daig_cli", "up", "--port", str(port)]
    up_argv += ["--metrics-port", str(metrics_port), "--aggregators", "2"]
    up_argv += ["--log-dir", str(processes.log_dir)]
    up = processes.start_argv("up", up_argv)

    def cli(*args: str, password: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "daig_cli", *args],
            env=processes.env | ({"DAIG_PASSWORD": password} if password else {}),
            capture_output=True,
            text=True,
            timeout=480,
        )

    try:
        wait_until(
            lambda: (
                (up.poll() is None or pytest.fail(processes.log("up")))
                and "DAIG is up" in processes.log("up")
            ),
            120,
            interval=0.5,
            what="daig up to report every role healthy",
        )
        for role_port in (port, metrics_port, metrics_port + 1, metrics_port + 2):
            assert cli("health", "--server", f"http://127.0.0.1:{role_port}").returncode == 0

        for user, password in (("volunteer", "vol-pass-1"), ("requestor", "req-pass-1")):
            signup = cli("signup", "--server", api, "--user", user, password=password)
            assert signup.returncode == 0, signup.stderr
        for name in ("provider-1", "provider-2"):
            processes.start(
                name,
                "provider",
                "--server",
                api,
                "--user",
                "volunteer",
                env={"DAIG_PASSWORD": "vol-pass-1"},
            )
        created = cli(
            "project", "create", "--server", api, "--user", "requestor",
            "--model", str(digits_files.model), "--data", str(digits_files.data),
            "--labels", str(digits_files.labels), "--epochs", "5", "--batch-size", "32",
            "--total-tasks", "8", "--task-size", "2", "--passes", "1", "--start", "--wait",
            password="req-pass-1",
        )  # fmt: skip
        assert created.returncode == 0, created.stderr[-3000:]
        project_id = created.stdout.strip().splitlines()[-1]
        output = tmp_path / "trained.h5"
        assert cli("project", "download", project_id, "-o", str(output)).returncode == 0
        accuracy = held_out_accuracy(output, digits_files.test_data, digits_files.test_labels)
        assert accuracy >= 0.8, f"held-out accuracy {accuracy:.3f}"

        with DaigClient(api) as client:
            client.login("requestor", "req-pass-1")
            project = client.project(project_id)
        assert project.state == "done"
        _check_metrics(api, metrics_port, project, digits_files)
        _check_logs(processes, project_id)
        _check_provider_logs(processes, project_id)
    finally:
        processes.stop("provider-1")
        processes.stop("provider-2")
        if up.poll() is None:
            up.send_signal(signal.SIGTERM)
        code = up.wait(60)
        processes.close()
    assert code == 0, processes.log("up")[-3000:]
    # every role stopped with it
    for role_port in (port, metrics_port):
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{role_port}/healthz", timeout=2)


def _check_metrics(api: str, metrics_port: int, project: dict, digits_files) -> None:
    api_m = _scrape(f"{api}/metrics")
    scheduler = _scrape(f"http://127.0.0.1:{metrics_port}/metrics")
    aggregators = [_scrape(f"http://127.0.0.1:{metrics_port + i}/metrics") for i in (1, 2)]
    every = [api_m, scheduler, *aggregators]
    rounds, k = project.total_rounds, project.hyperparameters.task_size

    # The aggregators between them closed every round and accepted exactly K per round.
    assert _total(aggregators, "daig_rounds_closed_total") == rounds
    assert _total(aggregators, "daig_results_accepted_total") == rounds * k
    assert "daig_results_rejected_total" in aggregators[0]
    assert "daig_tasks_reissued_total" in scheduler
    assert _total(aggregators, "daig_aggregator_delta_bytes_total") > 0

    # Whoever commits a round's tasks publishes them from the outbox: API, aggregators or scheduler.
    published = _total(every, "daig_tasks_published_total")
    claimed = _total([api_m], "daig_tasks_claimed_total")
    assert published >= rounds * k and claimed >= rounds * k
    refused = _total([api_m], "daig_claims_refused_total")
    assert _total([api_m], "daig_claim_duration_seconds_count") == claimed + refused
    assert _total([api_m], "daig_claim_wait_seconds_count") == claimed

    queues = {labels["queue"] for labels, _ in scheduler["daig_queue_messages"]}
    assert {"daig.tasks", "daig.results", "daig.scheduler.events", "daig.dead"} <= queues

    uploaded = sum(Path(getattr(digits_files, kind)).stat().st_size for kind in ("model", "data"))
    assert _total([api_m], "daig_api_upload_bytes_total", route="files") >= uploaded
    assert _total([api_m], "daig_api_download_bytes_total", route="blobs") > 0  # shards
    assert _total([api_m], "daig_api_download_bytes_total", route="model") > 0

    # Every series the provisioned dashboard plots is one the roles really expose.
    dashboard = (DEPLOY / "grafana" / "dashboards" / "daig-overview.json").read_text()
    plotted = set(re.findall(r"daig_[a-z_]+", dashboard)) - {"daig_prometheus"}
    exposed = {name for scraped in every for name in scraped}
    assert plotted and plotted <= exposed, sorted(plotted - exposed)


def _check_logs(logs: LocalCluster, project_id: str) -> None:
    """JSON lines; every line about the project carries its id, result lines the round and
    task too."""
    about_project = 0
    for role in ("api", "scheduler", "aggregator-1", "aggregator-2"):
        for line in logs.log(role).splitlines():
            entry = json.loads(line)
            if project_id in entry["message"]:
                about_project += 1
                assert entry["project"] == project_id, entry
            if re.search(r"task \S+: (accepted|published|claimed)", entry["message"]):
                assert entry["round"] is not None and entry["task"] is not None, entry
    assert about_project > 0


def _check_provider_logs(processes: LocalCluster, project_id: str) -> None:
    """Providers' JSON lines about a task carry its id, and once claimed its project too."""
    about_task = 0
    for name in ("provider-1", "provider-2"):
        for line in processes.log(name).splitlines():
            if not line.startswith("{"):
                continue  # e.g. TensorFlow's own start-up lines from the training child
            entry = json.loads(line)
            named = re.search(r"task (\S+): result \S+ sent", entry["message"])
            if named:
                about_task += 1
                assert entry["task"] == named.group(1), entry
                assert entry["project"] == project_id and entry["round"] is not None, entry
    assert about_task > 0
