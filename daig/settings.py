"""Settings shared by every DAIG process, read from ``DAIG_*`` environment variables.

Defaults work on a developer machine with RabbitMQ and PostgreSQL on localhost. Build a
``Settings`` inside ``main()`` (never at import time) so tests and the demo can pass their own.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_SECRET = "daig-development-secret-change-me"


def _default_blob_url() -> str:
    data_home = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return (data_home / "daig" / "blobs").as_uri()


class Settings(BaseSettings):
    """Configuration of the management server and of ``daig`` tools."""

    model_config = SettingsConfigDict(env_prefix="DAIG_", extra="ignore")

    env: Literal["development", "production"] = "development"
    database_url: str = "postgresql+psycopg2://postgres@127.0.0.1:5432/daig"
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/%2F"
    # What providers are told to connect to; defaults to ``amqp_url``.
    public_amqp_url: str | None = None
    blob_url: str = Field(default_factory=_default_blob_url)
    secret_key: str = DEV_SECRET
    public_api_url: str = "http://127.0.0.1:8000"

    # S3 credentials for ``s3://`` blob URLs (standard AWS variables also work).
    s3_endpoint_url: str | None = None
    s3_access_key: str | None = None
    s3_secret_key: str | None = None
    s3_region: str = "us-east-1"
    # Endpoint put in presigned URLs when providers reach S3 at another address.
    s3_public_endpoint_url: str | None = None

    token_ttl_seconds: int = 24 * 3600
    presign_ttl_seconds: int = 3600
    max_upload_bytes: int = 64 * 1024**3
    max_model_bytes: int = 2 * 1024**3
    lease_seconds: float = 60.0
    straggler_floor_seconds: float = 30.0
    scheduler_tick_seconds: float = 1.0
    max_task_failures: int = 3
    log_level: str = "INFO"
    log_json: bool = False

    @model_validator(mode="after")
    def _refuse_dev_secret_in_production(self) -> Settings:
        if self.env == "production" and self.secret_key == DEV_SECRET:
            raise ValueError(
                "DAIG_SECRET_KEY is the development default; set a long random secret "
                "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(48))'`)"
            )
        return self

    @property
    def provider_amqp_url(self) -> str:
        return self.public_amqp_url or self.amqp_url
