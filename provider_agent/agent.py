"""The provider agent's task loop: claim, fetch, train, upload, publish, ack.

Each task message is acked only after the result message was confirmed by the broker. While
the child trains, the loop keeps the broker connection alive and renews the claim's lease;
if the server says the task is no longer ours (done elsewhere, project paused), training
stops. Outages are ridden out: API calls are retried with backoff, and a result that could
not be published (broker down) is published first thing after reconnecting. On stop (Ctrl-C
or SIGTERM) the current task is given back at once, and so is a task the agent itself fails (an
unexpected error: logged with its traceback); after three of those in a row the agent stops.

The training process starts with the agent, before it logs in, and imports and warms up
TensorFlow in the background (``AgentStatus.state`` says "starting TensorFlow" meanwhile), so
the first task does not wait for the import; Stop ends it at once, mid-import too.

The status names each task's project and owner, its phase (downloading rows, starting
TensorFlow, training epoch i/n, uploading), the recent tasks, and, while the API or the broker
does not answer, that it is unreachable and when the next try is. Logging in at start rides out
outages too (a wrong password still ends the agent at once).
"""

from __future__ import annotations

import functools
import logging
import socket
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import httpx
from pika.exceptions import AMQPConnectionError, AMQPError

from daig import tempdirs
from daig.broker import BrokerSession, Delivery, Outcome, run_consumer
from daig.client import ClientError, DaigClient
from daig.contract.http import ClaimGrant, ProviderConfig, RemoteArray
from daig.contract.messages import TrainResult, TrainTask, decode
from daig.logs import log_context
from daig.planning import task_seed
from daig.presence import PRESENCE_SECONDS
from daig.topology import TASKS, Route, result_route
from provider_agent import fetch
from provider_agent.cache import ShardCache
from provider_agent.config import AgentConfig
from provider_agent.keepalive import KeepAlive, TaskAbandoned
from provider_agent.politeness import Hours, Politeness, describe
from provider_agent.results import result_message
from provider_agent.saved_login import EXPIRED
from provider_agent.status import (
    DOWNLOADING,
    STARTING_TENSORFLOW,
    UPLOADING,
    WAITING,
    AgentStatus,
    Outage,
    Stopwatch,
    TaskRecord,
    training_phase,
)
from provider_agent.status_file import StatusWriter
from provider_agent.suspend import SuspendedTooLong, Suspender, suspended_state
from provider_agent.trainer import RowsLike, Trainer, TrainingCancelled, TrainJob, TrainOutcome

log = logging.getLogger(__name__)
T = TypeVar("T")
RETRY_SECONDS = 120.0  # how long an API or upload outage is ridden out before giving up
MAX_BACKOFF_SECONDS = 10.0
API, BROKER = "the DAIG server", "the task broker"
POLITENESS_CHECK_SECONDS = 5.0  # how often idle, hours and power are looked at
CRASHES_IN_A_ROW = 3  # tasks failed by the agent itself, one after another, before it stops


class _Transient(Exception):
    """An outage that outlasted the retries."""


class ProviderAgent:
    def __init__(self, config: AgentConfig, stop: threading.Event | None = None) -> None:
        self.config = config
        self.stop = stop or threading.Event()
        self.status = AgentStatus()
        self.agent_id = f"{socket.gethostname()[:40]}-{uuid.uuid4().hex[:12]}"
        self._client = DaigClient(config.server, refresh_token=config.refresh_token)
        self._http = httpx.Client(timeout=120.0)
        self._trainer = Trainer(threads=config.threads, memory_mb=config.memory_mb)
        self._shards = ShardCache(config.cache_dir / "shards", config.shard_cache_mb)
        self._user_id = 0
        self._broker_user = ""  # our own broker user, stamped into every result's user_id
        self._unsent: list[tuple[Route, TrainResult]] = []  # published after a reconnect
        self.politeness = Politeness(
            idle_minutes=config.idle_minutes,
            hours=Hours.parse(config.hours) if config.hours else None,
            pause_on_battery=config.pause_on_battery,
            threads=config.threads,
            memory_mb=config.memory_mb,
        )
        self._checked_at = float("-inf")
        self._polite = True
        self._present_at = float("-inf")  # when we last told the server we wait for tasks
        self._crashes = 0  # tasks failed in a row by an error of the agent's own
        self._consuming = threading.Event()  # set: stop consuming the tasks queue (run_consumer)

    def run(self) -> None:
        """Start the training process, log in, then take tasks until stopped."""
        writer = (
            StatusWriter(self.config.status_file, self.status) if self.config.status_file else None
        )
        try:
            if self.polite_now(force=True):
                self._trainer.start()  # TensorFlow imports while we log in and connect
            broker = self._sign_in()
            if broker is None:
                return  # stopped while the server did not answer
            self._user_id = broker.user_id
            self._broker_user = broker.broker_user
            log.info("agent %s: volunteering as user %s", self.agent_id, self.config.username)
            while not self.stop.is_set():
                self._wait_until_polite()
                if self.stop.is_set():
                    break
                self._keep_trainer_warm()
                # Consume only while polite: a paused agent holds no task message.
                consuming = self._consuming = threading.Event()
                run_consumer(
                    broker.amqp_url,
                    TASKS.queue,
                    self._on_task,
                    consuming,
                    prefetch=1,
                    idle=functools.partial(self._between_tasks, consuming),
                    on_connect=self._connected,
                    declare=False,  # our broker user may not; the servers declare the topology
                    on_lost=lambda exc, wait: self._unreachable(BROKER, exc, wait),
                )
        finally:
            self._trainer.close()
            self._client.close()
            self._http.close()
            self.status.state = "stopped"
            if writer is not None:
                writer.close()

    def _sign_in(self) -> ProviderConfig | None:
        """Log in and get our broker account, however long the server does not answer (the
        status counts down to each try); None if stopped meanwhile. A definite refusal (HTTP
        4xx: wrong password, no such account) is raised at once."""
        backoff = 1.0
        while not self.stop.is_set():
            try:
                if self.config.token:  # started from a saved login: no password to log in with
                    self._client.token = self.config.token
                else:
                    self._log_in()
                config = self._call(self._client.provider_config)
            except ClientError as exc:
                if exc.status is not None and exc.status < 500:
                    raise
                log.warning("cannot log in (%s); retrying in %.0f s", exc, backoff)
                self._unreachable(API, exc, backoff)
                self.stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
                continue
            self._reachable(API)
            return config
        return None

    def _unreachable(self, what: str, error: BaseException, retry_in: float) -> None:
        self.status.outage = Outage(what, str(error), time.time() + retry_in)

    def _reachable(self, what: str) -> None:
        outage = self.status.outage
        if outage is not None and outage.what == what:
            self.status.outage = None

    def _connected(self, broker: BrokerSession) -> None:
        self._reachable(BROKER)
        self._publish_unsent(broker)

    # --- politeness -------------------------------------------------------------------------
    def polite_now(self, *, force: bool = False) -> bool:
        """Whether the volunteer's conditions allow work now (looked at every few seconds)."""
        if not force and time.monotonic() - self._checked_at < POLITENESS_CHECK_SECONDS:
            return self._polite
        self._checked_at = time.monotonic()
        verdict = self.politeness.check()
        if verdict.status != self.status.limits:
            log.info("agent %s: limits: %s", self.agent_id, describe(verdict.status))
        self.status.limits = verdict.status
        because = "; ".join(verdict.reasons) or None
        if because != self.status.paused_because:
            if because:
                log.info("agent %s: pausing: %s", self.agent_id, because)
            else:
                log.info("agent %s: resuming: every condition is met", self.agent_id)
        self.status.paused_because = because
        self._polite = verdict.ok
        return verdict.ok

    def _wait_until_polite(self) -> None:
        while not self.polite_now(force=True) and not self.stop.is_set():
            self.status.state = f"paused: {self.status.paused_because}"
            self.stop.wait(POLITENESS_CHECK_SECONDS)

    def _between_tasks(self, consuming: threading.Event, _: BrokerSession) -> None:
        """Every second while no task runs: stop consuming if we must, else keep warm."""
        if self.stop.is_set() or not self.polite_now():
            consuming.set()
        else:
            self._keep_trainer_warm()
            self._say_present()

    def _say_present(self) -> None:
        """Every ``PRESENCE_SECONDS`` while idle: we count as a volunteer online
        (``daig.presence``). Advisory: a failure only leaves us out of the count."""
        if time.monotonic() - self._present_at < PRESENCE_SECONDS:
            return
        self._present_at = time.monotonic()
        try:
            self._client.presence(self.agent_id)
        except ClientError as exc:
            log.debug("agent %s: presence not recorded: %s", self.agent_id, exc)

    def _keep_trainer_warm(self) -> None:
        """Have a training process started (unless the last one could not start TensorFlow:
        then the next task tries again) and show whether it is still warming up."""
        state = self._trainer.poll()
        if state == "stopped" and self._trainer.startup_error is None:
            self._trainer.start()
            state = self._trainer.state
        elif state == "stopped":
            self.status.last_error = self._trainer.startup_error
        waiting = STARTING_TENSORFLOW if state == "starting" else WAITING
        if waiting != self.status.state:
            log.info("agent %s: %s", self.agent_id, waiting)
        self.status.state = waiting

    def _should_stop_training(self) -> bool:
        """Stop (and give the task back) on Stop or Ctrl-C; a condition that no longer holds
        suspends the task instead (``_suspender``)."""
        return self.stop.is_set()

    def _suspender(self) -> Suspender:
        def reason() -> str | None:
            return None if self.polite_now() else self.status.paused_because or "paused"

        def changed(why: str | None) -> None:
            self.status.state = suspended_state(why) if why else "training"

        return Suspender(reason, self.config.suspend_minutes * 60, changed)

    def _publish_unsent(self, broker: BrokerSession) -> None:
        while self._unsent:
            route, result = self._unsent[0]
            broker.publish(route, result, user_id=self._broker_user)
            log.info("task %s: result published after reconnecting", result.task_id)
            self._unsent.pop(0)

    # --- one task ---------------------------------------------------------------------------
    def _on_task(self, delivery: Delivery, broker: BrokerSession) -> Outcome:
        if self.stop.is_set() or not self.polite_now():
            # Stop consuming at once: requeued, the message would come straight back, and a
            # few hundred such redeliveries a second reach the queue's delivery limit.
            self._consuming.set()
            return Outcome.REQUEUE
        task = decode(TrainTask, delivery.body, delivery.message_type)
        self._present_at = float("-inf")  # idle again after it: say so at once
        with log_context(task=task.task_id):
            return self._claim_and_work(task, broker)

    def _claim_and_work(self, task: TrainTask, broker: BrokerSession) -> Outcome:
        try:
            grant = self._retrying(
                lambda: self._call(self._client.claim, task.task_id, self.agent_id), broker.pump
            )
        except ClientError as exc:
            if exc.reason == "contributor_cap":
                # A slot frees up soon: keep the message rather than strand its task.
                log.info("task %s: project at its contributor cap; retrying later", task.task_id)
                broker.pump(2.0)
                return Outcome.REQUEUE
            if exc.reason == "quarantined":
                # No task will be ours again: stop, and leave the message to other volunteers.
                log.error("stopping: %s", exc)
                self.status.last_error = str(exc)
                self.stop.set()
                return Outcome.REQUEUE
            log.info("task %s: not ours (%s)", task.task_id, exc)
            return Outcome.ACK  # done, stale or taken: nothing to do
        except _Transient as exc:
            log.warning("task %s: cannot claim (%s); giving the message back", task.task_id, exc)
            return Outcome.REQUEUE
        self._set_status("training", grant)
        ended = "given back"
        try:
            with log_context(project=grant.project_id, round=grant.round):
                return self._work(grant, broker)
        except TrainingCancelled:
            return self._give_back(grant)
        except SuspendedTooLong as exc:
            log.info("task %s: %s", task.task_id, exc)
            return self._give_back(grant)
        except TaskAbandoned as exc:
            log.info("task %s: abandoned (%s)", task.task_id, exc)
            ended = f"abandoned: {exc}"
            return Outcome.ACK
        except AMQPConnectionError:
            ended = "sent after reconnecting"
            raise
        except AMQPError:
            raise
        except Exception as exc:
            ended = f"given back: agent error ({type(exc).__name__}: {exc})"
            return self._crashed(grant, exc)
        finally:
            self.status.end_task(str(grant.task_id), ended)  # unless _work said how it ended
            self.status.state = WAITING
            self.status.progress = 0.0
            if not self.stop.is_set():
                self._keep_trainer_warm()  # a child killed mid-task is replaced at once

    def _crashed(self, grant: ClaimGrant, error: Exception) -> Outcome:
        """An error of the agent's own (a bug, not the task's): give the task back at once --
        left to its lease, it would come back to this idle agent first -- and carry on with a
        new training process, unless the last tasks all failed like this: then stop, rather
        than take every task only to give it back. Not reported as a training failure, which
        would count against the requestor's project."""
        self._crashes += 1
        log.error(
            "project %s round %s task %s: the agent failed (%s: %s); giving the task back",
            grant.project_id,
            grant.round + 1,
            grant.task_id,
            type(error).__name__,
            error,
            exc_info=error,
        )
        self.status.last_error = f"the agent failed: {type(error).__name__}: {error}"
        self._trainer.close()  # in an unknown state now; replaced before the next task
        if self._crashes >= CRASHES_IN_A_ROW:
            log.error(
                "stopping: the agent itself failed %d tasks in a row (tracebacks above); "
                "please report it",
                self._crashes,
            )
            self.stop.set()
        return self._give_back(grant)

    def _work(self, grant: ClaimGrant, broker: BrokerSession) -> Outcome:
        """Train the task; how it ended goes in the status's task list."""
        task_id = str(grant.task_id)
        keepalive = KeepAlive(
            broker,
            lambda: self._call(self._client.heartbeat, grant.claim_id),
            grant.lease_seconds,
        )
        timings = Stopwatch()
        with tempdirs.scratch("task") as work:
            try:
                self.status.set_phase(DOWNLOADING)
                with timings.phase("download"):
                    job = self._retrying(lambda: self._prepare(grant, work), keepalive.wait)
            except (fetch.FetchError, _Transient, OSError) as exc:
                log.warning("task %s: download failed (%s); giving it back", grant.task_id, exc)
                self.status.last_error = str(exc)
                self.status.end_task(task_id, f"given back: download failed ({exc})")
                return self._give_back(grant)
            with timings.phase("train"):
                outcome = self._trainer.run(
                    job,
                    wait=lambda seconds: self._training(grant.epochs, keepalive.wait, seconds),
                    should_stop=self._should_stop_training,
                    on_progress=lambda f: self._training(grant.epochs, progress=f),
                    suspender=self._suspender(),
                )
            delta = Path(job.delta_path).read_bytes() if outcome.ok else b""
            inline = outcome.ok and len(delta) <= grant.inline_max_bytes
            if outcome.ok:
                self.status.set_phase(UPLOADING)
            if outcome.ok and not inline:
                try:
                    with timings.phase("upload"):
                        self._retrying(lambda: self._upload(grant, delta), keepalive.wait)
                except (fetch.FetchError, _Transient) as exc:
                    log.warning("task %s: upload failed (%s); giving it back", grant.task_id, exc)
                    self.status.end_task(task_id, f"given back: upload failed ({exc})")
                    return self._give_back(grant)
        timings.seconds |= {"fit": outcome.fit_seconds, "encode": outcome.encode_seconds}
        timings.seconds |= outcome.timings  # wait_ready, load, trace, setup (trainer.py)
        result = result_message(grant, outcome, delta, inline, timings.seconds, self._user_id)
        self._send(result_route(grant.result_routing_key), result, broker, keepalive)
        self._crashes = 0
        self._count(grant, outcome, result)
        self.status.end_task(task_id, "sent" if outcome.ok else f"failed: {outcome.error}")
        return Outcome.ACK

    def _training(
        self,
        epochs: int,
        wait: Callable[[float], None] | None = None,
        seconds: float = 0.0,
        progress: float | None = None,
    ) -> None:
        """Show the training phase (TensorFlow still starting, or the epoch under way), then
        pass the time with ``wait`` if given."""
        if progress is not None:
            self.status.progress = progress
        if self._trainer.state == "starting":
            self.status.set_phase(STARTING_TENSORFLOW)
        else:
            done = round(self.status.progress * epochs)
            self.status.set_phase(training_phase(min(done + 1, epochs), epochs))
        if wait is not None:
            wait(seconds)

    def _send(
        self, route: Route, result: TrainResult, broker: BrokerSession, keepalive: KeepAlive
    ) -> None:
        """Publish with confirms, or keep it for after the reconnect if the broker is gone."""
        if not keepalive.broker_broken:
            try:
                # Confirmed before the task is acked.
                broker.publish(route, result, user_id=self._broker_user)
                return
            except AMQPError as exc:
                log.warning("task %s: publishing failed (%s)", result.task_id, exc)
        self._unsent.append((route, result))
        # The task message cannot be acked on a dead channel: reconnect; the broker gives it
        # back, and by then our result is published (so the task is done or ours).
        raise AMQPConnectionError("broker connection lost with a result to publish")

    def _count(self, grant: ClaimGrant, outcome: TrainOutcome, result: TrainResult) -> None:
        if not outcome.ok:
            self.status.last_error = outcome.error
            log.warning(
                "project %s round %s shard %s task %s: training failed: %s%s",
                grant.project_id,
                grant.round,
                grant.shard,
                grant.task_id,
                outcome.error,
                f"\n{outcome.traceback}" if outcome.traceback else "",
            )
            return
        self.status.tasks_done += 1
        self.status.seconds_contributed += outcome.fit_seconds
        if self.config.max_tasks and self.status.tasks_done >= self.config.max_tasks:
            self.stop.set()
        log.info(
            "project %s round %s task %s: result %s sent (%.1f s fit)",
            grant.project_id,
            grant.round + 1,
            grant.task_id,
            result.message_id,
            outcome.fit_seconds,
        )

    def _prepare(self, grant: ClaimGrant, work: Path) -> TrainJob:
        """Fetch what the task needs; the child loads the model and traces its training step
        while the rows download."""
        model = fetch.cached_model(
            self._http, grant.model_url, grant.model_sha256, self.config.cache_dir / "models"
        )
        self._trainer.prepare(str(model), grant.model_sha256, _rows_like(grant))
        with ThreadPoolExecutor(max_workers=3, thread_name_prefix="fetch") as pool:
            weights = pool.submit(self._weights, grant, work / "w.dwt")
            x = pool.submit(self._shard, grant, "data", grant.data, work / "x.npy")
            y = pool.submit(self._shard, grant, "labels", grant.labels, work / "y.npy")
            paths = weights.result(), x.result(), y.result()
        return TrainJob(
            model_path=str(model),
            model_sha256=grant.model_sha256,
            weights_path=str(paths[0]),
            weight_schema=grant.weight_schema,
            x_path=str(paths[1]),
            y_path=str(paths[2]),
            epochs=grant.epochs,
            batch_size=grant.batch_size,
            validation_split=grant.validation_split,
            delta_path=str(work / "delta.dwt"),
            delta_codec=grant.delta_codec,
            seed=task_seed(grant.project_id, grant.round, grant.shard),
        )

    def _weights(self, grant: ClaimGrant, target: Path) -> Path:
        """The round's global weights: inside the grant for small models, else downloaded."""
        if grant.weights_inline is not None:
            return fetch.write_inline(grant.weights_inline, target)
        return fetch.download(self._http, grant.weights_url, target)

    def _shard(self, grant: ClaimGrant, kind: str, remote: RemoteArray, target: Path) -> Path:
        key = f"{grant.project_id}/{kind}-{remote.byte_start}-{remote.byte_end}.npy"
        if not self._shards.get(key, target):
            fetch.shard(self._http, remote, target)
            self._shards.put(key, target)
        return target

    def _upload(self, grant: ClaimGrant, delta: bytes) -> None:
        try:
            response = self._http.put(grant.result_url, content=delta)
        except httpx.TransportError as exc:
            raise fetch.FetchUnavailable(f"result upload failed: {exc}") from exc
        if response.status_code >= 500:
            raise fetch.FetchUnavailable(f"result upload got HTTP {response.status_code}")
        if response.status_code >= 300:
            raise fetch.FetchError(f"result upload refused with HTTP {response.status_code}")

    def _give_back(self, grant: ClaimGrant) -> Outcome:
        try:
            self._call(self._client.release, grant.claim_id)
            log.info("task %s: given back", grant.task_id)
            return Outcome.ACK  # the scheduler publishes it again
        except ClientError as exc:
            log.warning("task %s: release failed (%s); requeueing", grant.task_id, exc)
            return Outcome.REQUEUE

    # --- plumbing ---------------------------------------------------------------------------
    def _call(self, method: Callable[..., T], *args: Any) -> T:
        """Call the API, logging in again once if the token expired."""
        try:
            return method(*args)
        except ClientError as exc:
            if exc.status != 401:
                raise
            if not self.config.password:  # started from a saved token: nothing to renew it with
                raise ClientError(EXPIRED, status=401, reason="login_expired") from exc
            self._log_in()
            return method(*args)

    def _log_in(self) -> None:
        """Log in; a login the server holds back (429: too many failed logins from this
        address, or a burst of this account's agents starting at once) is tried again after
        the wait it names, for up to ``RETRY_SECONDS``."""
        deadline = time.monotonic() + RETRY_SECONDS
        while True:
            try:
                self._client.login(self.config.username, self.config.password)
                return
            except ClientError as exc:
                wait = exc.retry_after or 1.0
                if exc.status != 429 or time.monotonic() + wait > deadline:
                    raise
                log.warning("login held back (%s); trying again in %.0f s", exc, wait)
                if self.stop.wait(wait):
                    raise

    def _retrying(self, action: Callable[[], T], wait: Callable[[float], None]) -> T:
        """Run ``action``, riding out outages (no answer, HTTP 5xx) for ``RETRY_SECONDS``.

        Definite refusals (HTTP 4xx) are raised at once; ``wait`` is how to pass the time
        (pumping the broker, renewing the lease).
        """
        deadline = time.monotonic() + RETRY_SECONDS
        backoff = 0.5
        while True:
            try:
                answer = action()
            except (ClientError, fetch.FetchUnavailable) as exc:
                if isinstance(exc, ClientError) and exc.status is not None and exc.status < 500:
                    raise
                if self.stop.is_set() or time.monotonic() > deadline:
                    self._reachable(API)  # no longer trying
                    raise _Transient(str(exc)) from exc
                log.warning("server unavailable (%s); retrying in %.1f s", exc, backoff)
                self._unreachable(API, exc, backoff)
                wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
                continue
            self._reachable(API)
            return answer

    def _set_status(self, state: str, grant: ClaimGrant) -> None:
        status = self.status
        status.begin_task(
            TaskRecord(
                task_id=str(grant.task_id),
                project_name=grant.project_name or str(grant.project_id),
                owner_name=grant.owner_name,
                round=grant.round,
                shard=grant.shard,
                started_at=time.time(),
            )
        )
        status.project_id = str(grant.project_id)
        status.project_name = grant.project_name or None
        status.owner_name = grant.owner_name or None
        status.task_id = str(grant.task_id)
        status.round = grant.round
        status.shard = grant.shard
        status.progress = 0.0
        status.state = state


def _rows_like(grant: ClaimGrant) -> RowsLike:
    """The task's rows as far as tracing the model's training step is concerned."""
    return RowsLike(
        x_dtype=grant.data.dtype,
        x_row_shape=list(grant.data.row_shape),
        y_dtype=grant.labels.dtype,
        y_row_shape=list(grant.labels.row_shape),
        validation=grant.validation_split > 0,
    )
