"""Who is logged in, and calling the API as them (blocking: run these in a ``Worker``).

The password stays in memory for the session only (never written to disk): the provider
agent logs in with it, and an expired token is renewed with it without bothering the person.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from daig.client import ClientError, DaigClient

T = TypeVar("T")


def normalize_server(server: str) -> str:
    """``host:port`` or a URL with a trailing slash, as the base URL of the API."""
    server = server.strip().rstrip("/")
    if server and "://" not in server:
        server = f"http://{server}"
    return server


@dataclass
class Account:
    server: str
    username: str
    password: str = field(repr=False)
    token: str = field(default="", repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def call(self, action: Callable[[DaigClient], T]) -> T:
        """Run ``action`` with a client holding our token; log in again once if it expired."""
        with DaigClient(self.server, self.token) as client:
            try:
                return action(client)
            except ClientError as exc:
                if exc.status != 401 or exc.reason == "bad_credentials":
                    raise
                with self._lock:
                    self.token = client.login(self.username, self.password)
                return action(client)


def sign_in(server: str, username: str, password: str, *, create: bool = False) -> Account:
    """Log in (after signing up, with ``create``) and return the account; raises ClientError."""
    server = normalize_server(server)
    with DaigClient(server, timeout=15.0) as client:
        if create:
            client.signup(username, password)
        token = client.login(username, password)
    return Account(server=server, username=username, password=password, token=token)
