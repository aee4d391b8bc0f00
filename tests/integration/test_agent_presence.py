"""A real provider agent counts as a volunteer online while it waits for tasks
(``daig.presence``): it says so over the API."""

from __future__ import annotations

import threading
from pathlib import Path

from provider_agent.agent import ProviderAgent
from provider_agent.config import AgentConfig
from tests.helpers.accounts import PASSWORD
from tests.helpers.waiting import wait_until


def test_an_idle_agent_is_online(api_server, make_user, broker_session, tmp_path: Path) -> None:
    volunteer = make_user(api_server.url, "vol")
    watcher = make_user(api_server.url, "watcher")
    assert watcher.volunteers().online == 0
    config = AgentConfig(
        server=api_server.url,
        username=volunteer.me().username,
        password=PASSWORD,
        cache_dir=tmp_path / "cache",
        threads=1,
    )
    agent = ProviderAgent(config, threading.Event())
    runner = threading.Thread(target=agent.run, daemon=True)
    runner.start()
    try:
        wait_until(lambda: watcher.volunteers().online == 1, 60, what="the agent online")
        online = watcher.volunteers()
        assert (online.online, online.agents, online.window_seconds) == (1, 1, 120.0)
    finally:
        agent.stop.set()
        runner.join(60)
    assert not runner.is_alive()
