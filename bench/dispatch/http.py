"""A lean HTTP/1.1 client for the simulated providers: keep-alive connections over asyncio streams.

httpx costs a few hundred microseconds of CPU per request, which at hundreds of claims per
second makes the load generator compete with the servers it measures. This client does only
what the providers need: one request at a time per connection, ``Content-Length`` bodies out,
``Content-Length`` or chunked bodies in, idle connections reused most-recent-first (so the
pool stays as small as the concurrency), plain HTTP or TLS. A request that fails on a reused
connection before any byte of the answer arrived (the server closed it while idle) is sent
once more on a new one.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

# uvicorn closes keep-alive connections idle for 5 s; reuse only those idle for less.
IDLE_SECONDS = 4.0
_NO_BODY = (204, 304)


class HttpError(Exception):
    """The request got no (complete) answer."""


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.used_at = time.monotonic()

    def reusable(self, now: float) -> bool:
        return now - self.used_at < IDLE_SECONDS and not self.reader.at_eof()

    def close(self) -> None:
        self.writer.close()


class HttpPool:
    """Keep-alive connections to one origin (``http://host:port`` or ``https://...``)."""

    def __init__(self, origin: str, *, limit: int = 2048, timeout: float = 120.0) -> None:
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) origin: {origin!r}")
        self._host = parts.hostname
        self._tls = ssl.create_default_context() if parts.scheme == "https" else None
        self._port = parts.port or (443 if self._tls else 80)
        self._host_header = f"Host: {parts.netloc}\r\n".encode()
        self._idle: list[_Connection] = []
        self._slots = asyncio.Semaphore(limit)
        self._timeout = timeout
        self.opened = 0  # connections opened so far

    async def request(
        self, method: str, target: str, *, headers: bytes = b"", body: bytes = b""
    ) -> Response:
        """Send one request; ``headers`` are ready-made ``Name: value\\r\\n`` lines."""
        head = b"".join(
            (
                f"{method} {target} HTTP/1.1\r\n".encode(),
                self._host_header,
                headers,
                f"Content-Length: {len(body)}\r\n\r\n".encode(),
            )
        )
        async with self._slots, asyncio.timeout(self._timeout):
            connection = self._take()
            if connection is not None:
                try:
                    return await self._exchange(connection, head, body, fresh=False)
                except _Stale:
                    pass  # closed by the server while idle: once more on a new connection
            return await self._exchange(await self._open(), head, body, fresh=True)

    def _take(self) -> _Connection | None:
        now = time.monotonic()
        while self._idle:
            connection = self._idle.pop()
            if connection.reusable(now):
                return connection
            connection.close()
        return None

    async def _open(self) -> _Connection:
        try:
            reader, writer = await asyncio.open_connection(self._host, self._port, ssl=self._tls)
        except OSError as exc:
            raise HttpError(f"cannot connect to {self._host}:{self._port}: {exc}") from exc
        self.opened += 1
        return _Connection(reader, writer)

    async def _exchange(
        self, connection: _Connection, head: bytes, body: bytes, *, fresh: bool
    ) -> Response:
        try:
            if len(body) < 65536:
                connection.writer.write(head + body)
            else:
                connection.writer.writelines((head, body))
            await connection.writer.drain()
            status, keep, response = await _read_response(connection.reader)
        except (OSError, EOFError, ValueError, asyncio.LimitOverrunError) as exc:
            connection.close()
            answered = isinstance(exc, asyncio.IncompleteReadError) and exc.partial
            if not fresh and not answered and isinstance(exc, ConnectionError | EOFError):
                raise _Stale from exc
            raise HttpError(f"no complete answer: {exc!r}") from exc
        except BaseException:  # cancelled or timed out mid-request: the state is unknown
            connection.close()
            raise
        if keep:
            connection.used_at = time.monotonic()
            self._idle.append(connection)
        else:
            connection.close()
        return Response(status, response)

    async def close(self) -> None:
        for connection in self._idle:
            connection.close()
        self._idle.clear()


class _Stale(Exception):
    """The connection was closed under us before the answer began."""


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool, bytes]:
    """(status, connection reusable, body) of one response."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    fields: dict[bytes, bytes] = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        fields[name.strip().lower()] = value.strip().lower()
    keep = fields.get(b"connection") != b"close" and lines[0].startswith(b"HTTP/1.1")
    if status in _NO_BODY or 100 <= status < 200:
        return status, keep, b""
    if b"content-length" in fields:
        return status, keep, await reader.readexactly(int(fields[b"content-length"]))
    if fields.get(b"transfer-encoding", b"").endswith(b"chunked"):
        return status, keep, await _read_chunked(reader)
    return status, False, await reader.read()  # delimited by the end of the connection


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16)
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers
                pass
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)


class HttpClient:
    """Pools per origin, for the API and for whatever host presigned URLs point at."""

    def __init__(self, timeout: float = 120.0) -> None:
        self._pools: dict[str, HttpPool] = {}
        self._timeout = timeout

    def pool(self, origin: str) -> HttpPool:
        pool = self._pools.get(origin)
        if pool is None:
            pool = self._pools[origin] = HttpPool(origin, timeout=self._timeout)
        return pool

    async def put(self, url: str, body: bytes) -> Response:
        """PUT ``body`` to an absolute URL (a presigned upload)."""
        parts = urlsplit(url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        origin = f"{parts.scheme}://{parts.netloc}"
        headers = b"Content-Type: application/octet-stream\r\n"
        return await self.pool(origin).request("PUT", target, headers=headers, body=body)

    @property
    def opened(self) -> int:
        return sum(pool.opened for pool in self._pools.values())

    async def close(self) -> None:
        for pool in self._pools.values():
            await pool.close()
