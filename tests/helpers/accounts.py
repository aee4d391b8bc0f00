"""Test users: the password every integration test user has, and a signed-up, logged-in client."""

from __future__ import annotations

import uuid

from daig.client import DaigClient

PASSWORD = "correct-horse-battery"


def new_user(server_url: str, prefix: str = "user") -> DaigClient:
    """A logged-in client of a freshly signed-up user with a unique name."""
    client = DaigClient(server_url)
    username = f"{prefix}-{uuid.uuid4().hex[:10]}"
    client.signup(username, PASSWORD)
    client.login(username, PASSWORD)
    return client
