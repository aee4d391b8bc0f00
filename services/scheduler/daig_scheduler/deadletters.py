"""Recording dead-lettered messages, and giving their tasks out again.

A message lands in ``daig.dead`` when a consumer rejected it (unparseable, wrong schema) or
when it exceeded its queue's delivery limit (it kept failing). Task messages that expired
unclaimed (their time to live in the queue is the republish interval) are dropped here: the
scheduler publishes their tasks again. Each one is recorded with the
broker's reason so an operator can see it. A dead ``TrainTask`` would otherwise leave its task
``queued`` forever, so the task goes back to ``pending`` -- unless its messages keep dying,
which means the task itself breaks providers: then the project fails with that explanation.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from daig import states
from daig.broker import BrokerSession, Delivery, Outcome
from daig.contract.messages import MessageRejected, TrainTask, decode
from daig.db.models import DeadLetter, Project
from daig.logs import log_context
from daig.states import PROJECT_TABLE, ProjectAction

log = logging.getLogger(__name__)
MAX_DEAD_TASK_MESSAGES = 3


class DeadLetterRecorder:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def on_dead(self, delivery: Delivery, broker: BrokerSession) -> Outcome:
        task = _as_task(delivery)
        reason = str(delivery.headers.get("x-first-death-reason", "unknown"))
        queue = str(delivery.headers.get("x-first-death-queue", "unknown"))
        if task is not None and reason == "expired":
            # Nobody took it within its time to live (every volunteer busy, or none online):
            # not a poison message. The scheduler publishes the task again if still unclaimed.
            log.debug("task %s: message expired unclaimed", task.task_id)
            return Outcome.ACK
        with self._sessions.begin() as session:
            session.add(
                DeadLetter(
                    queue=queue[:255],
                    reason=reason[:64],
                    message_type=(delivery.message_type or "")[:64] or None,
                    message_id=(delivery.message_id or "")[:64] or None,
                    project_id=_project_id(delivery, task),
                    task_id=task.task_id if task else None,
                    body=_printable(delivery.body[:1024]),
                )
            )
            log.warning(
                "dead letter from %s (%s): %s %s",
                queue,
                reason,
                delivery.message_type,
                delivery.message_id,
            )
            if task is not None:
                session.flush()
                with log_context(project=task.project_id, round=task.round, task=task.task_id):
                    self._give_task_out_again(session, task)
        return Outcome.ACK

    def _give_task_out_again(self, session: Session, message: TrainTask) -> None:
        deaths = (
            session.scalar(
                select(func.count())
                .select_from(DeadLetter)
                .where(DeadLetter.task_id == message.task_id)
            )
            or 0
        )
        if deaths >= MAX_DEAD_TASK_MESSAGES:
            project = session.get(Project, message.project_id, with_for_update=True)
            if project is not None and PROJECT_TABLE.may(ProjectAction.FAIL, project.state):
                project.error = (
                    f"the task for shard {message.shard} of round {message.round} "
                    f"was dead-lettered {deaths} times: it keeps failing on "
                    "providers"
                )
                states.enter(project, ProjectAction.FAIL, now=datetime.now(UTC))
                log.error("project %s: failed: %s", project.id, project.error)
            return
        states.drop_message(session, message.task_id)


def _printable(body: bytes) -> str:
    """The body as text Postgres can store (no NUL), undecodable bytes escaped."""
    return body.decode("utf8", errors="backslashreplace").replace("\x00", "\\x00")


def _as_task(delivery: Delivery) -> TrainTask | None:
    if delivery.message_type != TrainTask.type_name:
        return None
    try:
        return decode(TrainTask, delivery.body, delivery.message_type)
    except MessageRejected:
        return None


def _project_id(delivery: Delivery, task: TrainTask | None) -> uuid.UUID | None:
    if task is not None:
        return task.project_id
    try:
        import json

        body: Any = json.loads(delivery.body)
        return uuid.UUID(str(body["project_id"]))
    except (ValueError, KeyError, TypeError):
        return None
