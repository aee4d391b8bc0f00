"""The dispatch benchmark's own parts: its HTTP client, its accounting and its verdict."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from bench.dispatch.config import Config, barrier_ceiling, field_limit, parse_args
from bench.dispatch.figures import fairness
from bench.dispatch.http import HttpError, HttpPool
from bench.dispatch.queues import group
from bench.dispatch.recorder import Recorder
from bench.dispatch.report import bottlenecks, knee
from bench.dispatch.sampler import role_of

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _serve(handler: Handler) -> tuple[asyncio.Server, str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}"


async def _read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return head, await reader.readexactly(length)


def _run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), 10))


def test_http_keeps_the_connection_and_reads_both_framings() -> None:
    seen: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with pytest.raises(asyncio.IncompleteReadError):
            while True:
                head, body = await _read_request(reader)
                seen.append(head.split(b"\r\n")[0] + b" " + body)
                if b"chunked" in head:
                    writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                    writer.write(b'3\r\n{"a\r\n5;x=1\r\n": 1}\r\n0\r\n\r\n')
                else:
                    writer.write(b"HTTP/1.1 409 Conflict\r\nContent-Length: 15\r\n\r\n")
                    writer.write(b'{"reason": "x"}')

    async def test() -> None:
        server, origin = await _serve(handler)
        pool = HttpPool(origin)
        first = await pool.request("POST", "/claim", body=b"{}")
        second = await pool.request("POST", "/chunked", headers=b"X-Mode: chunked\r\n")
        assert (first.status, first.json()) == (409, {"reason": "x"})
        assert (second.status, second.json()) == (200, {"a": 1})
        assert pool.opened == 1
        assert seen == [b"POST /claim HTTP/1.1 {}", b"POST /chunked HTTP/1.1 "]
        await pool.close()
        server.close()

    _run(test)


def test_http_retries_once_when_the_server_closed_an_idle_connection() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
        await writer.drain()
        writer.close()  # as uvicorn does after its keep-alive timeout

    async def test() -> None:
        server, origin = await _serve(handler)
        pool = HttpPool(origin)
        assert (await pool.request("POST", "/a")).status == 204
        await asyncio.sleep(0.05)
        assert (await pool.request("POST", "/b")).status == 204
        assert pool.opened == 2
        await pool.close()
        server.close()

    _run(test)


def test_http_reports_a_connection_closed_before_any_answer() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.close()

    async def test() -> None:
        server, origin = await _serve(handler)
        pool = HttpPool(origin)
        with pytest.raises(HttpError):
            await pool.request("POST", "/a")
        server.close()

    _run(test)


def test_time_is_clipped_to_the_windows_it_overlaps() -> None:
    recorder = Recorder()
    first = recorder.open(providers=2)
    first.start = 100.0
    recorder.close()
    first.end = 110.0
    second = recorder.open(providers=2)
    second.start, second.end = 115.0, 125.0
    recorder.spent("fitting", 95.0, 102.0)  # 2 s in the first window
    recorder.spent("waiting", 108.0, 117.0)  # 2 s in each
    recorder.spent("fitting", 111.0, 114.0)  # in the warm-up between them: nowhere
    assert first.seconds["fitting"] == 2.0 and first.seconds["waiting"] == 2.0
    assert second.seconds["waiting"] == 2.0 and second.seconds["fitting"] == 0.0


def test_events_in_a_warm_up_are_not_counted() -> None:
    recorder = Recorder()
    recorder.active.claims_ok += 5
    window = recorder.open(providers=1)
    window.claims_ok += 1
    recorder.close()
    recorder.active.claims_ok += 7
    assert [w.claims_ok for w in recorder.windows] == [1]
    assert window.generator_cpu >= 0 and window.end <= time.monotonic()


def test_fairness_of_claims_between_projects() -> None:
    even = fairness({"a": 10, "b": 10}, ["a", "b"])
    assert even["jain"] == 1.0 and even["share_min"] == even["share_max"] == 0.5
    one = fairness({"a": 30}, ["a", "b", "c"])
    assert one["jain"] == pytest.approx(1 / 3, abs=1e-4)
    assert (one["share_min"], one["share_max"], one["claims"]) == (0.0, 1.0, [30, 0, 0])
    assert fairness({}, ["a"])["jain"] is None


def _row(providers: int, accepted: float, busy: float, p99: float, **extra: Any) -> dict[str, Any]:
    return {
        "providers": providers,
        "offered_tasks_per_s": providers / 1.25,
        "results_accepted_per_s": accepted,
        "claims_per_s": accepted,
        "providers_busy": busy,
        "busy_ceiling": 0.97,
        "claim_latency_ms": {"p99": p99},
        **extra,
    }


def test_knee_is_the_largest_step_meeting_every_target() -> None:
    rows = [
        _row(100, 79.0, 0.95, 40),
        _row(250, 195.0, 0.93, 150),
        _row(
            500, 230.0, 0.6, 900, cpu={"postgres": 40.0}, cpu_busiest_process={"aggregator": 99.0}
        ),
    ]
    verdict = knee(rows)
    assert verdict["knee_providers"] == 250
    assert verdict["first_step_past_knee"] == 500
    assert verdict["saturation_accepted_per_s"] == 230.0
    assert any("accepted/s" in why for why in verdict["why"])
    assert verdict["limited_by"][0] == "aggregator CPU 99% of a core"


def test_no_knee_when_the_first_step_already_fails() -> None:
    verdict = knee([_row(50, 3.8, 0.2, 7500), _row(100, 3.5, 0.1, 14000)])
    assert verdict["knee_providers"] is None and verdict["first_step_past_knee"] == 50


def test_bottlenecks_name_backlogs_and_lock_waits() -> None:
    row = _row(
        100,
        5.0,
        0.2,
        5000,
        queues={"results": {"max": 120, "first": 10, "last": 120}},
        db_backends_mean={"lock_wait:aggregator": 0.5},
        cpu={"postgres": 30.0, "rabbitmq": 5.0},
        cpu_busiest_process={"api": 64.0},
    )
    found = bottlenecks(row)
    assert found[0] == "aggregator backlog (120 results waiting)"
    assert "aggregator waiting on a row lock 50% of the time" in found
    assert found[-1] == "closest to a full core: api (64%)"


def test_names_of_queues_and_processes() -> None:
    assert group("daig.tasks") == "tasks"
    assert group("daig.results") == group("daig.results.3") == "results"
    assert group("daig.resultsx") == "daig.resultsx"
    assert role_of("aggregator-2") == "aggregator" and role_of("api") == "api"
    assert role_of("provider12") == "provider"


def test_default_demand_is_the_same_for_one_and_many_projects() -> None:
    one, many = parse_args([]), parse_args(["--projects", "20"])
    assert one.steps == (100, 250, 500, 1000)
    assert one.task_size == many.task_size == field_limit("task_size")
    assert many.per_project(many.task_size) * 20 == one.task_size
    assert one.warmup_seconds == 10.0 and one.measured_seconds == 30.0


def test_round_barrier_ceiling_rises_with_tasks_per_provider() -> None:
    config: Config = parse_args(["--steps", "100", "--task-size", "100"])
    few = barrier_ceiling(100, config)
    many = barrier_ceiling(100, parse_args(["--steps", "100", "--task-size", "2000"]))
    assert 0.4 < few < many < 1.0
