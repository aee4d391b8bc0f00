"""Issue 15: what a requestor sees of a provider's training failure, whatever the provider sent.

A modified agent sends a raw TensorFlow error with the volunteer's paths and traceback frames;
the aggregator stores the sanitized reason, and the project's answer names the exception type
and the shard (``last_failure`` while retried, ``error`` once the project fails) with no path.
The real provider's side is ``tests/e2e/test_failure_reasons.py``.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from daig.broker import BrokerSession
from daig.contract.messages import TrainingStatus
from daig.db.models import Result
from daig.hyperparams import Hyperparameters
from daig_scheduler.handlers import Scheduler
from tests.helpers.aggregation import DirectAggregator
from tests.helpers.projects import Started
from tests.helpers.queues import drain_tasks
from tests.helpers.results import Provider, claim_round

RAW_ERROR = (
    "InvalidArgumentError: Graph execution error:\n\n"
    "Detected at node compile_loss/SparseSoftmaxCrossEntropyWithLogits defined at "
    "(most recent call last):\n"
    '  File "/home/volunteer/.venv/lib/python3.11/site-packages/keras/trainer.py", line 9, '
    "in fit\n\n"
    "Traceback (most recent call last):\n"
    '  File "/home/volunteer/agent.py", line 3, in <module>\n'
    "    run()\n"
    "Received a label value of 63 which is outside the valid range of [0, 10). "
    "Cache at /home/volunteer/.cache/daig/models/abc.h5 with DAIG_PASSWORD=hunter2"
)
ABSOLUTE_PATH = re.compile(r"(?<![\w.])/[\w.-]+/")


def assert_no_trace_of_the_machine(text: str) -> None:
    assert not ABSOLUTE_PATH.search(text), text
    assert "volunteer" not in text and "hunter2" not in text and 'File "' not in text, text


def test_a_providers_raw_error_reaches_the_requestor_sanitized_with_its_shard(
    start_project: Callable[..., Started],
    provider: Provider,
    aggregator: DirectAggregator,
    scheduler: Scheduler,
    broker_session: BrokerSession,
    sessions: sessionmaker[Session],
    api_server,
    amqp_url: str,
) -> None:
    started = start_project(Hyperparameters(total_tasks=3, task_size=3))
    grant = claim_round(provider, amqp_url)[0]
    failures = api_server.settings.max_task_failures
    for attempt in range(1, failures + 1):
        message = provider.result(grant, None, status=TrainingStatus.FAILED, error=RAW_ERROR)
        aggregator.handle(message)
        seen = started.owner.project(started.id)
        assert seen.last_failure is not None
        assert (seen.last_failure.shard, seen.last_failure.failures) == (grant.shard, attempt)
        reason = seen.last_failure.reason
        assert reason.startswith("InvalidArgumentError: Graph execution error:")
        assert "label value of 63 which is outside the valid range of [0, 10)" in reason
        assert_no_trace_of_the_machine(reason)
        if attempt < failures:
            assert seen.state == "running" and seen.error is None
            scheduler.reconcile(started.id, broker_session)
            drain_tasks(amqp_url)
            grant = provider.claim(grant.task_id)
    failed = started.owner.project(started.id)
    assert failed.state == "failed" and failed.error is not None
    assert f"training shard {grant.shard} failed {failures} times" in failed.error
    assert "InvalidArgumentError" in failed.error
    assert_no_trace_of_the_machine(failed.error)
    with sessions() as session:
        stored = session.scalars(select(Result.detail).where(Result.project_id == started.id))
        for detail in stored:
            assert_no_trace_of_the_machine(detail or "")
