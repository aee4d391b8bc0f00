"""The provider agent's task loop: claim, fetch, train, upload, publish, ack.

Each task message is acked only after the result message was confirmed by the broker. While
the child trains, the loop keeps the broker connection alive and renews the claim's lease;
if the server says the task is no longer ours (done elsewhere, project paused), training
stops. Outages are ridden out: API calls are retried with backoff (``session.py``), and a
result that could not be published (broker down) is published first thing after reconnecting
(``outbox.py``). On stop (Ctrl-C or SIGTERM) the current task is given back at once, and so is
a task the agent itself fails (an unexpected error: logged with its traceback); after three of
those in a row the agent stops (``tally.py``).

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
from pathlib import Path

from pika.exceptions import AMQPConnectionError, AMQPError

from daig import tempdirs
from daig.broker import BrokerSession, Delivery, Outcome, run_consumer
from daig.client import ClientError, DaigClient
from daig.contract.http import ClaimGrant
from daig.contract.messages import TrainTask, decode
from daig.logs import log_context
from daig.presence import PRESENCE_SECONDS
from daig.topology import TASKS, result_route
from provider_agent import fetch
from provider_agent.config import AgentConfig
from provider_agent.keepalive import KeepAlive, TaskAbandoned
from provider_agent.outbox import Outbox
from provider_agent.politeness import Hours, Politeness, describe
from provider_agent.results import result_message
from provider_agent.session import BROKER, ServerSession, Transient
from provider_agent.status import (
    DOWNLOADING,
    STARTING_TENSORFLOW,
    UPLOADING,
    WAITING,
    AgentStatus,
    Stopwatch,
    training_phase,
)
from provider_agent.status_file import StatusWriter
from provider_agent.suspend import SuspendedTooLong, Suspender, suspended_state
from provider_agent.tally import Tally
from provider_agent.task_files import TaskFiles, rows_like
from provider_agent.trainer import Trainer, TrainingCancelled, TrainJob

log = logging.getLogger(__name__)
POLITENESS_CHECK_SECONDS = 5.0  # how often idle, hours and power are looked at


class ProviderAgent:
    def __init__(self, config: AgentConfig, stop: threading.Event | None = None) -> None:
        self.config = config
        self.stop = stop or threading.Event()
        self.status = AgentStatus()
        self.agent_id = f"{socket.gethostname()[:40]}-{uuid.uuid4().hex[:12]}"
        self._client = DaigClient(config.server, refresh_token=config.refresh_token)
        self._session = ServerSession(self._client, config, self.status, self.stop)
        self._files = TaskFiles(config.cache_dir, config.shard_cache_mb)
        self._trainer = Trainer(threads=config.threads, memory_mb=config.memory_mb)
        self._outbox = Outbox()
        self._tally = Tally(self.status, config.max_tasks)
        self._user_id = 0
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
        self._consuming = threading.Event()  # set: stop consuming the tasks queue (run_consumer)

    def run(self) -> None:
        """Start the training process, log in, then take tasks until stopped."""
        writer = (
            StatusWriter(self.config.status_file, self.status) if self.config.status_file else None
        )
        try:
            if self.polite_now(force=True):
                self._trainer.start()  # TensorFlow imports while we log in and connect
            broker = self._session.sign_in()
            if broker is None:
                return  # stopped while the server did not answer
            self._user_id = broker.user_id
            self._outbox.broker_user = broker.broker_user
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
                    on_lost=lambda exc, wait: self._session.unreachable(BROKER, exc, wait),
                )
        finally:
            self._trainer.close()
            self._client.close()
            self._files.close()
            self.status.state = "stopped"
            if writer is not None:
                writer.close()

    def _connected(self, broker: BrokerSession) -> None:
        self._session.reachable(BROKER)
        self._outbox.publish_unsent(broker)

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
            grant = self._claim(task, broker)
        if isinstance(grant, Outcome):
            return grant
        try:
            with log_context(task=task.task_id):
                return self._work_on(grant, broker)
        finally:
            if not self.stop.is_set():
                # Outside the task's log context: the new child is for the next task.
                self._keep_trainer_warm()  # a child killed mid-task is replaced at once

    def _claim(self, task: TrainTask, broker: BrokerSession) -> ClaimGrant | Outcome:
        """The task's grant, or what to do with its message if it is not ours."""
        try:
            grant = self._session.retrying(
                lambda: self._session.call(self._client.claim, task.task_id, self.agent_id),
                broker.pump,
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
        except Transient as exc:
            log.warning("task %s: cannot claim (%s); giving the message back", task.task_id, exc)
            return Outcome.REQUEUE
        return grant

    def _work_on(self, grant: ClaimGrant, broker: BrokerSession) -> Outcome:
        """Work on a claimed task; whatever goes wrong, say how it ended."""
        self.status.claimed(grant)
        ended = "given back"
        try:
            with log_context(project=grant.project_id, round=grant.round):
                return self._work(grant, broker)
        except TrainingCancelled:
            return self._give_back(grant)
        except SuspendedTooLong as exc:
            log.info("task %s: %s", grant.task_id, exc)
            return self._give_back(grant)
        except TaskAbandoned as exc:
            log.info("task %s: abandoned (%s)", grant.task_id, exc)
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

    def _crashed(self, grant: ClaimGrant, error: Exception) -> Outcome:
        """An error of the agent's own (a bug, not the task's): give the task back at once --
        left to its lease, it would come back to this idle agent first -- and carry on with a
        new training process, unless the last tasks all failed like this: then stop, rather
        than take every task only to give it back."""
        too_many = self._tally.crashed(grant, error)
        self._trainer.close()  # in an unknown state now; replaced before the next task
        if too_many:
            self.stop.set()
        return self._give_back(grant)

    def _work(self, grant: ClaimGrant, broker: BrokerSession) -> Outcome:
        """Train the task; how it ended goes in the status's task list."""
        task_id = str(grant.task_id)
        keepalive = KeepAlive(
            broker,
            lambda: self._session.call(self._client.heartbeat, grant.claim_id),
            grant.lease_seconds,
        )
        timings = Stopwatch()
        with tempdirs.scratch("task") as work:
            try:
                self.status.set_phase(DOWNLOADING)
                with timings.phase("download"):
                    job = self._session.retrying(lambda: self._prepare(grant, work), keepalive.wait)
            except (fetch.FetchError, Transient, OSError) as exc:
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
                        self._session.retrying(
                            lambda: self._files.upload(grant, delta), keepalive.wait
                        )
                except (fetch.FetchError, Transient) as exc:
                    log.warning("task %s: upload failed (%s); giving it back", grant.task_id, exc)
                    self.status.end_task(task_id, f"given back: upload failed ({exc})")
                    return self._give_back(grant)
        timings.seconds |= {"fit": outcome.fit_seconds, "encode": outcome.encode_seconds}
        timings.seconds |= outcome.timings  # wait_ready, load, trace, setup (trainer.py)
        result = result_message(grant, outcome, delta, inline, timings.seconds, self._user_id)
        self._outbox.send(
            result_route(grant.result_routing_key),
            result,
            broker,
            broker_broken=keepalive.broker_broken,
        )
        if self._tally.sent(grant, outcome, result):
            self.stop.set()  # max_tasks done
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

    def _prepare(self, grant: ClaimGrant, work: Path) -> TrainJob:
        """Fetch what the task needs; the child loads the model and traces its training step
        while the rows download."""
        model = self._files.model(grant)
        self._trainer.prepare(str(model), grant.model_sha256, rows_like(grant))
        return self._files.job(grant, model, work)

    def _give_back(self, grant: ClaimGrant) -> Outcome:
        try:
            self._session.call(self._client.release, grant.claim_id)
            log.info("task %s: given back", grant.task_id)
            return Outcome.ACK  # the scheduler publishes it again
        except ClientError as exc:
            log.warning("task %s: release failed (%s); requeueing", grant.task_id, exc)
            return Outcome.REQUEUE
