"""The simulated providers, their connections, and the ramp of steps.

Providers are spread round-robin over the accounts; each account's providers share its
broker connections, ``providers_per_connection`` at most to one. All providers share one pool
of keep-alive HTTP connections to the API (sending their own account's token), which grows
to the number of claims in flight at once. Each step adds providers, lets them warm up, then
opens the recorder's window for the measured part.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from bench.dispatch.amqp import Link
from bench.dispatch.config import Config
from bench.dispatch.http import HttpClient, HttpPool
from bench.dispatch.provider import DeltaPool, Provider, Shared
from bench.dispatch.recorder import Recorder
from bench.dispatch.setup import Account

LOOP_LAG_PERIOD = 0.1


@dataclass(frozen=True)
class FleetStats:
    """Totals over the run, for the report."""

    connections: int
    reconnects: int
    http_connections_opened: int
    claims_unanswered: int  # claims still waiting for the API's answer at the stop


class Fleet:
    def __init__(self, api_url: str, accounts: list[Account], config: Config, recorder: Recorder):
        self._accounts = accounts
        self._config = config
        self.shared = Shared(
            api=HttpPool(api_url),
            uploads=HttpClient(),
            deltas=DeltaPool(config.seed),
            recorder=recorder,
            fit_min=config.fit_min,
            fit_max=config.fit_max,
        )
        self._links: dict[str, list[Link]] = {account.name: [] for account in accounts}
        self.providers: list[Provider] = []
        self._tasks: list[asyncio.Task[None]] = []

    async def grow(self, target: int) -> None:
        """Add providers up to ``target``, opening connections where the existing are full."""
        opening: list[Link] = []
        starting = []
        while len(self.providers) < target:
            index = len(self.providers)
            account = self._accounts[index % len(self._accounts)]
            links = self._links[account.name]
            if not links or links[-1].consumers >= self._config.providers_per_connection:
                links.append(Link(account.broker.amqp_url, account.broker.tasks_queue))
                opening.append(links[-1])
            link = links[-1]
            provider = Provider(
                f"sim-agent-{index:04d}",
                account,
                link,
                self.shared,
                seed=self._config.seed * 100_003 + index,
            )
            link.attach(provider.inbox)
            if link not in opening:
                starting.append(link.start_consumer(provider.inbox))
            self.providers.append(provider)
            self._tasks.append(asyncio.create_task(provider.run()))
        await asyncio.gather(*(link.open() for link in opening), *starting)

    async def close(self) -> FleetStats:
        """Stop every provider (their task messages go back to the queue) and disconnect."""
        unanswered = sum(1 for provider in self.providers if provider.state == "claiming")
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for provider in self.providers:
            provider.flush()
        links = [link for links in self._links.values() for link in links]
        await asyncio.gather(*(link.close() for link in links), return_exceptions=True)
        await self.shared.api.close()
        await self.shared.uploads.close()
        return FleetStats(
            connections=len(links),
            reconnects=sum(link.reconnects for link in links),
            http_connections_opened=self.shared.api.opened + self.shared.uploads.opened,
            claims_unanswered=unanswered,
        )


async def watch_loop_lag(recorder: Recorder, period: float = LOOP_LAG_PERIOD) -> None:
    """How late the event loop wakes up from a short sleep: the generator's own saturation."""
    while True:
        began = time.monotonic()
        await asyncio.sleep(period)
        recorder.active.loop_lag.append(time.monotonic() - began - period)


async def ramp(
    api_url: str, accounts: list[Account], config: Config
) -> tuple[Recorder, FleetStats]:
    """Run every step: grow the fleet, warm up, measure; then stop the fleet."""
    recorder = Recorder()
    fleet = Fleet(api_url, accounts, config, recorder)
    lag = asyncio.create_task(watch_loop_lag(recorder))
    try:
        for target in config.steps:
            began = time.monotonic()
            await fleet.grow(target)
            print(
                f"step: {target} providers (connected in {time.monotonic() - began:.1f} s); "
                f"{config.warmup_seconds:.0f} s warm-up, {config.measured_seconds:.0f} s measured",
                flush=True,
            )
            await asyncio.sleep(config.warmup_seconds)
            recorder.open(target)
            await asyncio.sleep(config.measured_seconds)
            recorder.close()
    finally:
        lag.cancel()
        stats = await fleet.close()
    return recorder, stats
