"""``volunteer_agent``: a provider agent of a new volunteer (``agent_of``: of a given account),
and ``running``: that agent's run in a thread, stopped on the way out (the in-process agent
tests' start-up)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from daig.client import DaigClient
from provider_agent.agent import ProviderAgent
from provider_agent.config import AgentConfig
from tests.helpers.accounts import PASSWORD
from tests.helpers.services import ApiServer


def volunteer_agent(
    api_server: ApiServer, make_user: Callable[..., DaigClient], tmp_path: Path, **options: Any
) -> ProviderAgent:
    """An agent of a new "volunteer" account on ``api_server`` (see ``agent_of``)."""
    volunteer = make_user(api_server.url, "volunteer")
    return agent_of(api_server.url, volunteer.me().username, tmp_path, **options)


def agent_of(server_url: str, username: str, tmp_path: Path, **options: Any) -> ProviderAgent:
    """An agent of the account ``username`` (password ``PASSWORD``) on ``server_url``: one
    thread, its cache under ``tmp_path``; ``options`` are further ``AgentConfig`` fields."""
    config = AgentConfig(
        server=server_url,
        username=username,
        password=PASSWORD,
        cache_dir=tmp_path / "cache",
        threads=1,
        **options,
    )
    return ProviderAgent(config, threading.Event())


@contextmanager
def running(agent: ProviderAgent) -> Iterator[threading.Thread]:
    """``agent.run`` in a daemon thread (yielded); on the way out, Stop and up to 30 s to end."""
    runner = threading.Thread(target=agent.run, daemon=True)
    runner.start()
    try:
        yield runner
    finally:
        agent.stop.set()
        runner.join(30)
