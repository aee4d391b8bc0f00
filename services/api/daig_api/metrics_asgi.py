"""ASGI middleware for the API: count body bytes in and out, tag log lines with the project.

Pure ASGI (not Starlette's BaseHTTPMiddleware) so streamed uploads and file downloads pass
through chunk by chunk, never buffered.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from daig import metrics
from daig.logs import log_context

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_PROJECT = re.compile(r"^/v1/projects/([0-9a-fA-F-]{36})(?:/|$)")


class MeteringMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = str(scope.get("path", ""))
        group = metrics.route_group(path)
        uploaded = metrics.UPLOAD_BYTES.labels(group)
        downloaded = metrics.DOWNLOAD_BYTES.labels(group)

        async def counting_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                uploaded.inc(len(message.get("body", b"")))
            return message

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.body":
                downloaded.inc(len(message.get("body", b"")))
            await send(message)

        match = _PROJECT.match(path)
        with log_context(project=match.group(1) if match else None):
            await self.app(scope, counting_receive, counting_send)
