"""Structured logs carry project/round/task ids; a consumer role's /healthz follows its broker.

The health endpoint is exercised on the real local Postgres and RabbitMQ: 503 before the
consumer connects, 200 while it consumes, 503 again once its connection is closed.
"""

from __future__ import annotations

import io
import json
import logging
import threading
import uuid
from collections.abc import Iterator

import httpx
import pytest

from daig.logs import ContextFilter, JsonFormatter, log_context, setup_logging
from daig_cli.processes import free_port
from tests.helpers.waiting import wait_until


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """The root logger as a role sets it up (JSON), writing into a buffer."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    setup_logging("INFO", json_lines=True, process="scheduler")
    stream = io.StringIO()
    root.handlers[0].setStream(stream)  # type: ignore[attr-defined]
    yield stream
    root.handlers[:], root.level = saved[0], saved[1]


def _entries(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_always_have_the_ids(captured: io.StringIO) -> None:
    log = logging.getLogger("some.library")
    project, task = uuid.uuid4(), uuid.uuid4()
    log.info("outside")
    with log_context(project=project):
        log.info("reconciling")
        with log_context(round=3, task=task):
            log.warning("published")
        log.info("after the task")
    first, second, third, fourth = _entries(captured)
    assert first["project"] is None and first["round"] is None and first["task"] is None
    assert second["project"] == str(project) and second["round"] is None
    # Round index 3 is the fourth round: numbered from 1, as the GUI and CLI show rounds.
    assert third == third | {"project": str(project), "round": "4", "task": str(task)}
    assert third["level"] == "WARNING" and third["process"] == "scheduler"
    assert third["logger"] == "some.library"
    assert fourth["project"] == str(project) and fourth["task"] is None


def test_ids_follow_a_thread_started_with_the_context(captured: io.StringIO) -> None:
    import contextvars

    project = uuid.uuid4()
    with log_context(project=project):
        context = contextvars.copy_context()
    worker = threading.Thread(target=context.run, args=(logging.getLogger("w").info, "in thread"))
    worker.start()
    worker.join()
    assert _entries(captured)[0]["project"] == str(project)


def test_text_lines_end_with_the_ids() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(ContextFilter())
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s%(ids)s"))
    log = logging.getLogger("text.test")
    log.setLevel(logging.INFO)
    log.addHandler(handler)
    log.propagate = False
    try:
        with log_context(project="p1", round=0):
            log.info("hello")
        log.info("bye")
    finally:
        log.removeHandler(handler)
    # Round index 0 is shown as round 1, as the GUI and CLI number rounds.
    assert stream.getvalue().splitlines() == ["INFO hello project=p1 round=1", "INFO bye"]


def test_exceptions_stay_one_json_line(captured: io.StringIO) -> None:
    try:
        raise ValueError("bad delta")
    except ValueError:
        logging.getLogger("x").exception("failed")
    (entry,) = _entries(captured)
    assert "ValueError: bad delta" in str(entry["exception"])
    assert isinstance(JsonFormatter("api").format(logging.makeLogRecord({"msg": "m"})), str)


def test_log_context_refuses_unknown_ids() -> None:
    with pytest.raises(TypeError, match="project, round, task"), log_context(user=1):
        pass


def test_role_healthz_follows_the_broker_connection(database_url: str, amqp_url: str) -> None:
    from daig.broker import run_consumer
    from daig.db.session import make_engine
    from daig.metrics import BrokerLink, role_health, serve

    engine = make_engine(database_url)
    link = BrokerLink()
    server = serve(free_port(), role_health(engine, link), host="127.0.0.1")
    url = f"http://127.0.0.1:{server.server_port}"
    stop = threading.Event()
    consumer = threading.Thread(
        target=run_consumer,
        args=(amqp_url, "daig.results.0", lambda *_: None, stop),
        kwargs={"on_connect": link.on_connect, "idle_seconds": 0.2},
        daemon=True,
    )
    try:
        before = httpx.get(f"{url}/healthz", timeout=5)
        assert before.status_code == 503
        assert before.json()["broker"] == {"ok": False, "error": "not connected"}
        assert before.json()["database"] == {"ok": True}
        consumer.start()
        wait_until(
            lambda: httpx.get(f"{url}/healthz", timeout=5).status_code == 200, 30, what="healthy"
        )
        metrics = httpx.get(f"{url}/metrics", timeout=5)
        assert metrics.status_code == 200 and "daig_rounds_closed_total" in metrics.text
        stop.set()
        consumer.join(10)
        after = httpx.get(f"{url}/healthz", timeout=5)
        assert after.status_code == 503, after.text
    finally:
        stop.set()
        server.shutdown()
        server.server_close()
        engine.dispose()
