"""The agent's account on the DAIG server: signing in, API calls that ride out outages, and
the status's notice while the server (the API or the broker) does not answer.

Signing in at start is retried for as long as the server does not answer, the status counting
down to each try; a definite refusal (HTTP 4xx: wrong password) ends it at once. Calls during
a task are retried for ``RETRY_SECONDS``. An expired access token is renewed by the client
from the saved login's refresh token, or here by logging in again when there is a password.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from daig.client import ClientError, DaigClient
from daig.contract.http import ProviderConfig
from provider_agent import fetch
from provider_agent.config import AgentConfig
from provider_agent.saved_login import EXPIRED
from provider_agent.status import AgentStatus, Outage

log = logging.getLogger(__name__)
T = TypeVar("T")
RETRY_SECONDS = 120.0  # how long an API or upload outage is ridden out before giving up
MAX_BACKOFF_SECONDS = 10.0
API, BROKER = "the DAIG server", "the task broker"


class Transient(Exception):
    """An outage that outlasted the retries."""


class ServerSession:
    """Logs ``client`` in as ``config`` says and keeps ``status.outage`` up to date; waits
    end early when ``stop`` is set."""

    def __init__(
        self,
        client: DaigClient,
        config: AgentConfig,
        status: AgentStatus,
        stop: threading.Event,
    ) -> None:
        self._client = client
        self._config = config
        self._status = status
        self._stop = stop

    def sign_in(self) -> ProviderConfig | None:
        """Log in and get our broker account, however long the server does not answer (the
        status counts down to each try); None if stopped meanwhile. A definite refusal (HTTP
        4xx: wrong password, no such account) is raised at once."""
        backoff = 1.0
        while not self._stop.is_set():
            try:
                if self._config.token:  # started from a saved login: no password to log in with
                    self._client.token = self._config.token
                else:
                    self.log_in()
                config = self.call(self._client.provider_config)
            except ClientError as exc:
                if exc.status is not None and exc.status < 500:
                    raise
                log.warning("cannot log in (%s); retrying in %.0f s", exc, backoff)
                self.unreachable(API, exc, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
                continue
            self.reachable(API)
            return config
        return None

    def log_in(self) -> None:
        """Log in; a login the server holds back (429: too many failed logins from this
        address, or a burst of this account's agents starting at once) is tried again after
        the wait it names, for up to ``RETRY_SECONDS``."""
        deadline = time.monotonic() + RETRY_SECONDS
        while True:
            try:
                self._client.login(self._config.username, self._config.password)
                return
            except ClientError as exc:
                wait = exc.retry_after or 1.0
                if exc.status != 429 or time.monotonic() + wait > deadline:
                    raise
                log.warning("login held back (%s); trying again in %.0f s", exc, wait)
                if self._stop.wait(wait):
                    raise

    def call(self, method: Callable[..., T], *args: Any) -> T:
        """Call the API, logging in again once if the token expired."""
        try:
            return method(*args)
        except ClientError as exc:
            if exc.status != 401:
                raise
            if not self._config.password:  # a saved login: its refresh token was already tried
                raise ClientError(EXPIRED, status=401, reason="login_expired") from exc
            self.log_in()
            return method(*args)

    def retrying(self, action: Callable[[], T], wait: Callable[[float], None]) -> T:
        """Run ``action``, riding out outages (no answer, HTTP 5xx) for ``RETRY_SECONDS``;
        ``Transient`` once they outlast that (or on Stop).

        Definite refusals (HTTP 4xx) are raised at once; ``wait`` is how to pass the time
        (pumping the broker, renewing the lease).
        """
        deadline = time.monotonic() + RETRY_SECONDS
        backoff = 0.5
        while True:
            try:
                answer = action()
            except (ClientError, fetch.FetchUnavailable) as exc:
                if isinstance(exc, ClientError) and exc.status is not None and exc.status < 500:
                    raise
                if self._stop.is_set() or time.monotonic() > deadline:
                    self.reachable(API)  # no longer trying
                    raise Transient(str(exc)) from exc
                log.warning("server unavailable (%s); retrying in %.1f s", exc, backoff)
                self.unreachable(API, exc, backoff)
                wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
                continue
            self.reachable(API)
            return answer

    def unreachable(self, what: str, error: BaseException, retry_in: float) -> None:
        """``what`` (``API`` or ``BROKER``) does not answer; the next try is in ``retry_in``."""
        self._status.outage = Outage(what, str(error), time.time() + retry_in)

    def reachable(self, what: str) -> None:
        """``what`` answers again: its outage, if shown, is over."""
        outage = self._status.outage
        if outage is not None and outage.what == what:
            self._status.outage = None
