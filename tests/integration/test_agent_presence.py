"""A real provider agent counts as a volunteer online while it waits for tasks
(``daig.presence``): it says so over the API."""

from __future__ import annotations

from pathlib import Path

from tests.helpers.agents import running, volunteer_agent
from tests.helpers.waiting import wait_until


def test_an_idle_agent_is_online(api_server, make_user, broker_session, tmp_path: Path) -> None:
    watcher = make_user(api_server.url, "watcher")
    assert watcher.volunteers().online == 0
    agent = volunteer_agent(api_server, make_user, tmp_path)
    with running(agent) as runner:
        wait_until(lambda: watcher.volunteers().online == 1, 60, what="the agent online")
        online = watcher.volunteers()
        assert (online.online, online.agents, online.window_seconds) == (1, 1, 120.0)
    assert not runner.is_alive()
