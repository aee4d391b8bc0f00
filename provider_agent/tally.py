"""How the agent's tasks ended, counted and logged: tasks done and seconds contributed for the
status, and the two counts that stop the agent: ``max_tasks`` done, or ``CRASHES_IN_A_ROW``
tasks failed one after another by an error of the agent's own (a bug, not the task's: unlike a
training failure, not reported to the server, where it would count against the project)."""

from __future__ import annotations

import logging

from daig.contract.http import ClaimGrant
from daig.contract.messages import TrainResult
from provider_agent.status import AgentStatus
from provider_agent.trainer import TrainOutcome

log = logging.getLogger(__name__)
CRASHES_IN_A_ROW = 3  # tasks failed by the agent itself, one after another, before it stops


class Tally:
    """Counts into ``status``; each method says whether the agent should stop now."""

    def __init__(self, status: AgentStatus, max_tasks: int | None) -> None:
        self._status = status
        self._max_tasks = max_tasks
        self._crashes = 0  # tasks failed in a row by an error of the agent's own

    def sent(self, grant: ClaimGrant, outcome: TrainOutcome, result: TrainResult) -> bool:
        """A task's result was sent (trained, or training failed); True once ``max_tasks``
        tasks are done."""
        self._crashes = 0
        status = self._status
        if not outcome.ok:
            status.last_error = outcome.error
            log.warning(
                "project %s round %s shard %s task %s: training failed: %s%s",
                grant.project_id,
                grant.round,
                grant.shard,
                grant.task_id,
                outcome.error,
                f"\n{outcome.traceback}" if outcome.traceback else "",
            )
            return False
        status.tasks_done += 1
        status.seconds_contributed += outcome.fit_seconds
        log.info(
            "project %s round %s task %s: result %s sent (%.1f s fit)",
            grant.project_id,
            grant.round + 1,
            grant.task_id,
            result.message_id,
            outcome.fit_seconds,
        )
        return bool(self._max_tasks and status.tasks_done >= self._max_tasks)

    def crashed(self, grant: ClaimGrant, error: Exception) -> bool:
        """The agent failed a task by an error of its own (logged with its traceback); True
        when the last ``CRASHES_IN_A_ROW`` tasks all failed like this."""
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
        self._status.last_error = f"the agent failed: {type(error).__name__}: {error}"
        if self._crashes < CRASHES_IN_A_ROW:
            return False
        log.error(
            "stopping: the agent itself failed %d tasks in a row (tracebacks above); "
            "please report it",
            self._crashes,
        )
        return True
