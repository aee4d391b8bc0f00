"""Building the FastAPI application from settings (no connections at import time)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI
from starlette.types import ASGIApp

from daig import tempdirs
from daig.blobstore import open_blob_store
from daig.broker import Publisher
from daig.db.session import make_engine, make_sessionmaker
from daig.dispatch import DispatchPolicy
from daig.settings import Settings
from daig_api import errors
from daig_api.catalog import ProjectCatalog
from daig_api.fastpath import ProviderFastPath
from daig_api.grants import InlineWeights, SharedUrls
from daig_api.metrics_asgi import MeteringMiddleware
from daig_api.relay import BackgroundRelay
from daig_api.routes import (
    auth,
    blobs,
    credits,
    files,
    health,
    projects,
    provider_results,
    sessions,
    tasks,
)
from daig_api.routes import metrics as metrics_route

# Requests run in at most this many threads at once. Python runs one at a time (the GIL):
# more threads than this only hold their transactions open longer while waiting for it.
REQUEST_THREADS = 16


class DaigApi(FastAPI):
    """FastAPI with the providers' fast path (``fastpath``) in front of its middleware."""

    def build_middleware_stack(self) -> ASGIApp:
        return ProviderFastPath(super().build_middleware_stack())


def create_app(settings: Settings) -> FastAPI:
    """The API with its database, blob store and publisher attached to ``app.state``."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # As many pooled connections as request threads: a connection opened beyond the pool
        # is closed again after one request, and a new Postgres backend per claim is costly.
        anyio.to_thread.current_default_thread_limiter().total_tokens = REQUEST_THREADS
        engine = make_engine(settings.database_url, pool_size=REQUEST_THREADS, max_overflow=8)
        upload_dir = tempdirs.process_dir("uploads")
        app.state.settings = settings
        app.state.sessionmaker = make_sessionmaker(engine)
        app.state.blobs = open_blob_store(settings)
        app.state.publisher = Publisher(settings.amqp_url, settings.result_partitions)
        app.state.upload_dir = upload_dir
        app.state.engine = engine
        app.state.catalog = ProjectCatalog(app.state.sessionmaker)
        app.state.inline_weights = InlineWeights(settings.inline_weights_max_bytes)
        app.state.shared_urls = SharedUrls()
        app.state.dispatch_policy = DispatchPolicy.from_settings(settings)
        app.state.relay = BackgroundRelay(app.state.sessionmaker, settings.amqp_url)
        app.state.relay.start()
        try:
            yield
        finally:
            try:
                app.state.relay.close()
                app.state.publisher.close()
                engine.dispose()
            finally:
                tempdirs.remove(upload_dir)

    app = DaigApi(
        title="DAIG — Distributed A.I. Grid",
        version="1",
        description="Train Keras models on volunteers' computers by K-batch synchronous SGD.",
        lifespan=lifespan,
    )
    errors.install(app)
    routers = (auth, sessions, projects, files, tasks, provider_results, blobs, health, credits)
    for module in routers:
        app.include_router(module.router)
    app.include_router(metrics_route.router)
    app.add_middleware(MeteringMiddleware)
    return app
