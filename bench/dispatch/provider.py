"""One simulated provider: the real agent's task loop (``provider_agent.agent``), minus training.

Per task message (prefetch 1, on its own channel): claim the task over HTTP; a refusal acks
the message (the task is not ours), except ``contributor_cap``, which pauses 2 s and requeues
it; no answer or HTTP 5xx is retried with backoff for up to two minutes, then requeued. Then
"fit" for a random time (renewing the lease as the agent does if that is long), send a delta
of the model's exact schema (inline when the grant's ``inline_max_bytes`` allows, else PUT to
``result_url``), publish the ``TrainResult`` with confirms as the account's broker user, and
ack the task message only after the broker confirmed the result.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import random
import time
from dataclasses import dataclass

import numpy as np

from bench.dispatch.amqp import Delivery, Inbox, Link, PublishFailed
from bench.dispatch.http import HttpClient, HttpError, HttpPool, Response
from bench.dispatch.recorder import Recorder
from bench.dispatch.setup import Account
from daig.broker import properties
from daig.contract.http import ClaimGrant
from daig.contract.messages import MessageRejected, TrainingStatus, TrainResult, TrainTask, decode
from daig.weights.schema import WeightSchema
from daig.weights.stream import encode_weights

log = logging.getLogger(__name__)
_LOGGED: set[str] = set()  # kinds of unexpected errors already logged
RETRY_SECONDS = 120.0  # as the agent: how long an API outage is ridden out
CAP_PAUSE_SECONDS = 2.0  # as the agent: wait before giving a capped task's message back
PUBLISH_ATTEMPTS = 3


Grant = ClaimGrant  # the server's own response model: what a provider may rely on


@dataclass(frozen=True)
class Delta:
    data: bytes
    sha256: str
    base64: str


class DeltaPool:
    """A few random deltas per weight schema and codec, made once and reused.

    Encoding a fresh delta for every task would cost the generator more CPU than everything
    else a simulated provider does; the aggregator checks each delta's hash, schema and
    norm, which a reused one passes like a fresh one.
    """

    def __init__(self, seed: int, size: int = 8) -> None:
        self._rng = np.random.default_rng(seed)
        self._size = size
        self._pools: dict[tuple[str, str], list[Delta]] = {}

    def pick(self, grant: Grant, rng: random.Random) -> Delta:
        key = (grant.schema_hash, grant.delta_codec)
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = [self._make(grant) for _ in range(self._size)]
        return pool[rng.randrange(len(pool))]

    def _make(self, grant: Grant) -> Delta:
        schema = WeightSchema.from_json(grant.weight_schema)
        arrays = [
            (self._rng.standard_normal(t.shape) * 1e-3).astype(np.dtype(t.dtype))
            for t in schema.tensors
        ]
        data = encode_weights(arrays, codec=grant.delta_codec)
        return Delta(data, hashlib.sha256(data).hexdigest(), base64.b64encode(data).decode())


@dataclass(frozen=True)
class Shared:
    """What every simulated provider uses: the API's pool, uploads, deltas, the recorder."""

    api: HttpPool
    uploads: HttpClient
    deltas: DeltaPool
    recorder: Recorder
    fit_min: float
    fit_max: float


class Provider:
    """A simulated provider; ``run`` takes task messages from ``inbox`` until cancelled."""

    def __init__(self, name: str, account: Account, link: Link, shared: Shared, seed: int):
        self.name = name
        self.account = account
        self.link = link
        self.inbox: Inbox = asyncio.Queue()
        self.shared = shared
        self.random = random.Random(seed)
        self._headers = (
            f"Authorization: Bearer {account.token}\r\nContent-Type: application/json\r\n"
        ).encode()
        self._claim_body = json.dumps({"agent_id": name}).encode()
        self._state, self._since = "waiting", time.monotonic()

    def _enter(self, state: str) -> None:
        now = time.monotonic()
        self.shared.recorder.spent(self._state, self._since, now)
        self._state, self._since = state, now

    @property
    def state(self) -> str:
        """What it is doing now: one of ``recorder.STATES``."""
        return self._state

    def flush(self) -> None:
        """Count the time in the current state up to now (at the end of the run)."""
        self._enter(self._state)

    async def run(self) -> None:
        while True:
            delivery = await self.inbox.get()
            self._enter("claiming")
            self.shared.recorder.active.deliveries += 1
            try:
                await self._one(delivery)
            except Exception as exc:  # e.g. a grant this code cannot read: count it, go on
                kind = f"provider: {type(exc).__name__}"
                if kind not in _LOGGED:
                    _LOGGED.add(kind)
                    log.exception("%s failed a task (logged once per kind of error)", self.name)
                self.shared.recorder.active.errors[kind] += 1
                delivery.requeue()
            finally:
                self._enter("waiting")

    async def _one(self, delivery: Delivery) -> None:
        try:
            task = decode(TrainTask, delivery.body, delivery.message_type)
        except MessageRejected:
            self.shared.recorder.active.errors["unreadable task message"] += 1
            delivery.reject()
            return
        grant = await self._claim(task, delivery)
        if grant is None:
            return
        fit = self.random.uniform(self.shared.fit_min, self.shared.fit_max)
        self._enter("fitting")
        if not await self._fit(fit, grant):
            delivery.ack()  # the server took it back: nothing to send
            return
        self._enter("sending")
        await self._send(grant, fit, delivery)

    # --- claiming ---------------------------------------------------------------------------
    async def _post(self, path: str, body: bytes = b"") -> Response | None:
        """POST to the API; None (counted as an error) if there was no usable answer."""
        try:
            response = await self.shared.api.request("POST", path, headers=self._headers, body=body)
        except (HttpError, TimeoutError) as exc:
            self.shared.recorder.active.errors[f"{path.split('/')[2]}: {type(exc).__name__}"] += 1
            return None
        if response.status >= 500:
            self.shared.recorder.active.errors[f"{path.split('/')[2]}: HTTP {response.status}"] += 1
            return None
        return response

    async def _claim(self, task: TrainTask, delivery: Delivery) -> Grant | None:
        """The grant, or None once the message was settled (refused, or given up on)."""
        deadline, backoff = time.monotonic() + RETRY_SECONDS, 0.5
        while True:
            sent = time.monotonic()
            response = await self._post(f"/v1/tasks/{task.task_id}/claim", self._claim_body)
            if response is not None:
                break
            if time.monotonic() > deadline:
                delivery.requeue()
                return None
            self._enter("pausing")
            await asyncio.sleep(backoff)
            backoff = min(2 * backoff, 10.0)
            self._enter("claiming")
        window = self.shared.recorder.active
        window.claim_latency.append(time.monotonic() - sent)
        if response.status == 200:
            window.claims_ok += 1
            return Grant.model_validate_json(response.body)
        reason = _reason(response)
        window.refusals[reason] += 1
        if reason == "contributor_cap":  # a slot frees up soon: keep the message for later
            self._enter("pausing")
            await asyncio.sleep(CAP_PAUSE_SECONDS)
            delivery.requeue()
        else:
            delivery.ack()  # done, stale or taken: not ours
        return None

    async def _fit(self, seconds: float, grant: Grant) -> bool:
        """Sleep ``seconds``, renewing the lease every third of it; False if it was lost."""
        interval = max(1.0, grant.lease_seconds / 3)
        while seconds > interval:
            await asyncio.sleep(interval)
            seconds -= interval
            response = await self._post(f"/v1/claims/{grant.claim_id}/heartbeat")
            if response is not None and response.status in (404, 409):
                self.shared.recorder.active.refusals[f"lease: {_reason(response)}"] += 1
                return False
        await asyncio.sleep(seconds)
        return True

    # --- sending the result -----------------------------------------------------------------
    async def _send(self, grant: Grant, fit: float, delivery: Delivery) -> None:
        delta = self.shared.deltas.pick(grant, self.random)
        inline = len(delta.data) <= grant.inline_max_bytes
        if not inline and not await self._upload(grant, delta):
            await self._post(f"/v1/claims/{grant.claim_id}/release")  # give it back
            delivery.ack()
            return
        result = TrainResult(
            project_id=grant.project_id,
            round=grant.round,
            task_id=grant.task_id,
            claim_id=grant.claim_id,
            provider_id=self.account.broker.user_id,
            status=TrainingStatus.TRAINED,
            blob_key=grant.result_key,
            sha256=delta.sha256,
            inline_delta=delta.base64 if inline else None,
            schema_hash=grant.schema_hash,
            samples=grant.data.rows,
            fit_seconds=fit,
            history={"loss": [1.0], "accuracy": [0.1]},
            timings={"fit": fit},
        )
        # Acked only now, when the broker has the result. A publish that failed for good was
        # counted; acking frees this provider, and the lapsed lease gets the task re-issued.
        await self._publish(grant, result)
        delivery.ack()

    async def _upload(self, grant: Grant, delta: Delta) -> bool:
        try:
            response = await self.shared.uploads.put(grant.result_url, delta.data)
        except (HttpError, TimeoutError) as exc:
            self.shared.recorder.active.errors[f"upload: {type(exc).__name__}"] += 1
            return False
        if response.status >= 300:
            self.shared.recorder.active.errors[f"upload: HTTP {response.status}"] += 1
            return False
        self.shared.recorder.active.uploads += 1
        return True

    async def _publish(self, grant: Grant, result: TrainResult) -> bool:
        """Publish with confirms (again after a reconnect if the connection was lost)."""
        broker = self.account.broker
        key = grant.result_routing_key
        body = result.model_dump_json().encode()
        props = properties(result, user_id=broker.broker_user)
        for attempt in range(1, PUBLISH_ATTEMPTS + 1):
            began = time.monotonic()
            try:
                await self.link.publish(broker.results_exchange, key, body, props)
                break
            except PublishFailed as exc:
                self.shared.recorder.active.errors[f"publish: {exc.reason}"] += 1
                if not exc.retriable or attempt == PUBLISH_ATTEMPTS:
                    return False
                await asyncio.sleep(0.5)
        window = self.shared.recorder.active
        window.publish_latency.append(time.monotonic() - began)
        window.published += 1
        self.shared.recorder.published_at[str(grant.claim_id)] = time.time()
        return True


def _reason(response: Response) -> str:
    """The API's machine-readable refusal reason, or the status."""
    try:
        body = response.json()
    except ValueError:
        body = None
    reason = body.get("reason") if isinstance(body, dict) else None
    return str(reason or f"HTTP {response.status}")
