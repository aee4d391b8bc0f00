"""The provider agent's task loop: claim, fetch, train, upload, publish, ack.

Each task message is acked only after the result message was confirmed by the broker. While
the child trains, the loop keeps the broker connection alive and renews the claim's lease;
if the server says the task is no longer ours (done elsewhere, project paused), training
stops. On stop (Ctrl-C / SIGTERM) the current task is given back at once.
"""

from __future__ import annotations

import hashlib
import logging
import socket
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from daig.broker import Delivery, Outcome, run_consumer
from daig.broker import Session as BrokerSession
from daig.client import ClientError, DaigClient
from daig.messages import ResultStatus, TrainResult, TrainTask, decode
from daig.topology import RESULTS, TASKS
from provider_agent import fetch
from provider_agent.config import AgentConfig
from provider_agent.trainer import Trainer, TrainingCancelled, TrainJob

log = logging.getLogger(__name__)


@dataclass
class AgentStatus:
    """What the agent is doing, for the CLI and the GUI."""

    state: str = "starting"
    project_id: str | None = None
    task_id: str | None = None
    round: int | None = None
    progress: float = 0.0
    tasks_done: int = 0
    seconds_contributed: float = 0.0
    last_error: str | None = None
    history: list[str] = field(default_factory=list)


class _TaskAbandoned(Exception):
    """The server took the task back (done elsewhere, project paused, lease lost)."""


class ProviderAgent:
    def __init__(self, config: AgentConfig, stop: threading.Event | None = None) -> None:
        self.config = config
        self.stop = stop or threading.Event()
        self.status = AgentStatus()
        self.agent_id = f"{socket.gethostname()[:40]}-{uuid.uuid4().hex[:12]}"
        self._client = DaigClient(config.server)
        self._http = httpx.Client(timeout=120.0)
        self._trainer = Trainer(threads=config.threads)
        self._user_id = 0

    def run(self) -> None:
        """Log in, then take tasks until stopped."""
        self._client.login(self.config.username, self.config.password)
        broker = self._client.provider_config()
        self._user_id = int(broker["user_id"])
        self.status.state = "waiting for tasks"
        log.info("agent %s: waiting for tasks as user %s", self.agent_id, self.config.username)
        try:
            run_consumer(broker["amqp_url"], TASKS.queue, self._on_task, self.stop, prefetch=1)
        finally:
            self._trainer.close()
            self._client.close()
            self._http.close()
            self.status.state = "stopped"

    # --- one task ---------------------------------------------------------------------------
    def _on_task(self, delivery: Delivery, broker: BrokerSession) -> Outcome:
        if self.stop.is_set():
            return Outcome.REQUEUE
        task = decode(TrainTask, delivery.body, delivery.message_type)
        try:
            grant = self._call(self._client.claim, task.task_id, self.agent_id)
        except ClientError as exc:
            if exc.status is not None and 400 <= exc.status < 500:
                log.info("task %s: not ours (%s)", task.task_id, exc)
                return Outcome.ACK  # done, stale or taken: nothing to do
            log.warning("task %s: cannot claim (%s); retrying later", task.task_id, exc)
            broker.pump(2.0)
            return Outcome.REQUEUE
        self._set_status("training", grant)
        try:
            outcome = self._work(grant, broker)
        except TrainingCancelled:
            return self._give_back(grant)
        except _TaskAbandoned as exc:
            log.info("task %s: abandoned (%s)", task.task_id, exc)
            return Outcome.ACK
        finally:
            self.status.state = "waiting for tasks"
            self.status.progress = 0.0
        return outcome

    def _work(self, grant: dict[str, Any], broker: BrokerSession) -> Outcome:
        with tempfile.TemporaryDirectory(prefix="daig-task-") as directory:
            work = Path(directory)
            try:
                job = self._prepare(grant, work)
            except (fetch.FetchError, OSError) as exc:
                log.warning("task %s: download failed (%s); giving it back", grant["task_id"], exc)
                self.status.last_error = str(exc)
                return self._give_back(grant)
            lease = _LeaseKeeper(self, grant)

            def wait(seconds: float) -> None:
                broker.pump(seconds)
                lease.renew_if_due()

            outcome = self._trainer.run(
                job,
                wait=wait,
                should_stop=self.stop.is_set,
                on_progress=lambda f: setattr(self.status, "progress", f),
            )
            if outcome.ok:
                self._upload(grant, Path(job.delta_path))
            result = self._result_message(grant, outcome, Path(job.delta_path))
        broker.publish(RESULTS, result)  # confirmed by the broker before we ack the task
        if outcome.ok:
            self.status.tasks_done += 1
            self.status.seconds_contributed += outcome.fit_seconds
            if self.config.max_tasks and self.status.tasks_done >= self.config.max_tasks:
                self.stop.set()
            log.info(
                "project %s round %s task %s: result sent (%.1f s fit)",
                grant["project_id"],
                grant["round"],
                grant["task_id"],
                outcome.fit_seconds,
            )
        else:
            self.status.last_error = outcome.error
            log.warning("task %s: training failed: %s", grant["task_id"], outcome.error)
        return Outcome.ACK

    def _prepare(self, grant: dict[str, Any], work: Path) -> TrainJob:
        model = fetch.cached_model(
            self._http, grant["model_url"], grant["model_sha256"], self.config.cache_dir / "models"
        )
        return TrainJob(
            model_path=str(model),
            model_sha256=grant["model_sha256"],
            weights_path=str(fetch.download(self._http, grant["weights_url"], work / "w.dwt")),
            weight_schema=grant["weight_schema"],
            x_path=str(fetch.shard(self._http, grant["data"], work / "x.npy")),
            y_path=str(fetch.shard(self._http, grant["labels"], work / "y.npy")),
            epochs=grant["epochs"],
            batch_size=grant["batch_size"],
            validation_split=grant["validation_split"],
            delta_path=str(work / "delta.dwt"),
        )

    def _upload(self, grant: dict[str, Any], delta: Path) -> None:
        with open(delta, "rb") as stream:
            response = self._http.put(grant["result_url"], content=stream.read())
        if response.status_code >= 300:
            raise _TaskAbandoned(f"result upload refused with HTTP {response.status_code}")

    def _result_message(self, grant: dict[str, Any], outcome: Any, delta: Path) -> TrainResult:
        common = dict(
            project_id=grant["project_id"],
            round=grant["round"],
            task_id=grant["task_id"],
            claim_id=grant["claim_id"],
            provider_id=self._user_id,
        )
        if not outcome.ok:
            return TrainResult(status=ResultStatus.FAILED, error=outcome.error, **common)
        return TrainResult(
            status=ResultStatus.TRAINED,
            blob_key=grant["result_key"],
            sha256=hashlib.sha256(delta.read_bytes()).hexdigest(),
            schema_hash=grant["schema_hash"],
            samples=outcome.samples,
            fit_seconds=outcome.fit_seconds,
            history=outcome.history,
            **common,
        )

    def _give_back(self, grant: dict[str, Any]) -> Outcome:
        try:
            self._call(self._client.release, grant["claim_id"])
            log.info("task %s: given back", grant["task_id"])
            return Outcome.ACK  # the scheduler publishes it again
        except ClientError as exc:
            log.warning("task %s: release failed (%s); requeueing", grant["task_id"], exc)
            return Outcome.REQUEUE

    def _call(self, method: Any, *args: Any) -> Any:
        """Call the API, logging in again once if the token expired."""
        try:
            return method(*args)
        except ClientError as exc:
            if exc.status != 401:
                raise
            self._client.login(self.config.username, self.config.password)
            return method(*args)

    def _set_status(self, state: str, grant: dict[str, Any]) -> None:
        self.status.state = state
        self.status.project_id = str(grant["project_id"])
        self.status.task_id = str(grant["task_id"])
        self.status.round = int(grant["round"])
        self.status.progress = 0.0


class _LeaseKeeper:
    """Renews the claim's lease every third of its length while the task runs."""

    def __init__(self, agent: ProviderAgent, grant: dict[str, Any]) -> None:
        self._agent = agent
        self._claim_id = grant["claim_id"]
        self._interval = max(1.0, float(grant["lease_seconds"]) / 3)
        self._next = time.monotonic() + self._interval

    def renew_if_due(self) -> None:
        if time.monotonic() < self._next:
            return
        self._next = time.monotonic() + self._interval
        try:
            self._agent._call(self._agent._client.heartbeat, self._claim_id)
        except ClientError as exc:
            if exc.status == 409 or exc.status == 404:
                self._agent._trainer.close()
                raise _TaskAbandoned(str(exc)) from exc
            log.warning("lease renewal failed (%s); will retry", exc)
