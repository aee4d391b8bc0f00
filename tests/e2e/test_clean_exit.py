"""Every DAIG process removes its temporary directories when it is stopped by SIGTERM.

API, scheduler, aggregator (with its evaluator's cache), a provider in the middle of a task,
``daig project create --wait`` and the GUI run as real processes with a ``TMPDIR`` of this
test's own; each is seen holding its ``daig-<kind>-<pid>-*`` directory, all get SIGTERM at
once, each must exit by itself, and nothing of theirs may remain.
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest

from daig.client import DaigClient
from daig_cli.cluster import LocalCluster
from tests.helpers.waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def _dirs(tmp: Path, process: subprocess.Popen[bytes], kind: str) -> list[Path]:
    return sorted(tmp.glob(f"daig-{kind}-{process.pid}-*"))


def test_sigterm_leaves_no_temporary_directories(
    database_url: str, amqp_url: str, digits_files, tmp_path: Path
) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    cluster = LocalCluster.owned(
        tmp_path / "work",
        database_url=database_url,
        amqp_url=amqp_url,
        secret="clean-exit-secret-key-long-enough-for-hs256",
        settings={"replication": "false", "credit_signup_grant": "100000"},
        env={"TMPDIR": str(tmp), "TF_CPP_MIN_LOG_LEVEL": "3", "QT_QPA_PLATFORM": "offscreen"},
    )
    try:
        cluster.start_servers()
        for user in ("volunteer", "requestor"):
            with DaigClient(cluster.api_url) as client:
                client.signup(user, user + "-pass")
        provider = cluster.start_provider("provider", "volunteer", "volunteer-pass")
        cli = cluster.start(
            "cli",
            "project", "create", "--server", cluster.api_url, "--user", "requestor",
            "--password", "requestor-pass", "--model", str(digits_files.model),
            "--data", str(digits_files.data), "--labels", str(digits_files.labels),
            "--validation-data", str(digits_files.test_data),
            "--validation-labels", str(digits_files.test_labels),
            "--epochs", "40", "--total-tasks", "8", "--task-size", "2", "--passes", "5",
            "--start", "--wait",
        )  # fmt: skip
        gui = cluster.start("gui", "gui", "--server", cluster.api_url)
        processes = cluster.processes

        def holding(name: str, kind: str) -> bool:
            if cluster.dead() is not None:
                dead = cluster.dead()
                raise AssertionError(f"{dead} exited:\n{cluster.log(str(dead))[-3000:]}")
            return bool(_dirs(tmp, processes[name], kind))

        for name, kind in (("api", "uploads"), ("aggregator", "eval"), ("gui", "gui")):
            wait_until(lambda n=name, k=kind: holding(n, k), 120, what=f"{name}'s {kind} dir")
        # The CLI holds its scratch while it waits; the provider its task's while it trains.
        wait_until(lambda: holding("cli", "upload"), 120, what="the CLI's upload dir")
        wait_until(lambda: holding("provider", "task"), 240, interval=0.05, what="a task")
        assert provider.poll() is None and cli.poll() is None and gui.poll() is None

        names = list(processes)
        for name in names:
            cluster.signal(name, signal.SIGTERM)
        codes = {}
        for name in names:
            try:
                codes[name] = processes[name].wait(60)
            except subprocess.TimeoutExpired:
                codes[name] = None
        stuck = {name: code for name, code in codes.items() if code is None or code < 0}
        assert not stuck, {name: cluster.log(name)[-2000:] for name in stuck}
        assert codes["cli"] == 128 + signal.SIGTERM, cluster.log("cli")[-2000:]
        left = sorted(path.name for path in tmp.iterdir() if path.name.startswith("daig-"))
        assert left == [], {name: cluster.log(name)[-1500:] for name in names}
    finally:
        cluster.close()
