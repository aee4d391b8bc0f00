"""Who is logged in, and calling the API as them (blocking: run these in a ``Worker``).

The password stays in memory for the session only (never written to disk): the provider
agent logs in with it. An expired access token is renewed with the refresh token the login
asked for (the one the background agent is saved with), else with the password, without
bothering the person.
"""

from __future__ import annotations

import socket
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
    refresh_token: str = field(default="", repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def call(self, action: Callable[[DaigClient], T]) -> T:
        """Run ``action`` with a client holding our tokens (it renews the access token with
        the refresh token); log in again once if the token was refused all the same."""
        refresh = self.refresh_token or None
        with DaigClient(self.server, self.token, refresh_token=refresh) as client:
            try:
                result = action(client)
            except ClientError as exc:
                if exc.status != 401 or exc.reason == "bad_credentials":
                    raise
                with self._lock:
                    self.token = client.login(self.username, self.password)
                return action(client)
            if client.token and client.token != self.token:
                self.token = client.token  # renewed: the next call starts from it
            return result


def sign_in(server: str, username: str, password: str, *, create: bool = False) -> Account:
    """Log in (after signing up, with ``create``) and return the account; raises ClientError."""
    server = normalize_server(server)
    with DaigClient(server, timeout=15.0) as client:
        if create:
            client.signup(username, password)
        label = f"DAIG window on {socket.gethostname()}"
        token = client.login(username, password, remember=True, label=label)
        refresh = client.refresh_token or ""
    return Account(
        server=server, username=username, password=password, token=token, refresh_token=refresh
    )
