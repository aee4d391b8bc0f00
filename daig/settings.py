"""Settings shared by every DAIG process, read from ``DAIG_*`` environment variables.

Defaults work on a developer machine with RabbitMQ and PostgreSQL on localhost. Build a
``Settings`` inside ``main()`` (never at import time) so tests and the demo can pass their own.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from daig.topology import DEFAULT_RESULT_PARTITIONS

MAX_GRANT = 1_000_000_000  # credits; 10^15 work units, far from the ledger's 64-bit limit

DEV_SECRET = "daig-development-secret-change-me"
# Values of DAIG_DELTA_RETENTION_HOURS that keep deltas for good.
KEEP_FOREVER = frozenset({"forever", "never", "keep"})


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
    # RabbitMQ's management HTTP API, where the API creates each provider's broker user;
    # defaults to port 15672 on ``amqp_url``'s host, as ``amqp_url``'s user and password.
    rabbitmq_management_url: str | None = None
    rabbitmq_admin_user: str | None = None
    rabbitmq_admin_password: str | None = None
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
    # A refresh token (asked for with the ``offline_access`` scope: the DAIG window, ``daig
    # login``) lasts this many days after its last use, until revoked at logout.
    refresh_token_days: float = Field(default=90.0, gt=0, le=3650)
    presign_ttl_seconds: int = 3600
    max_upload_bytes: int = 64 * 1024**3
    max_model_bytes: int = 2 * 1024**3
    lease_seconds: float = 60.0
    straggler_floor_seconds: float = 30.0
    scheduler_tick_seconds: float = 1.0
    max_task_failures: int = 3
    # Published, unclaimed task messages per project at once (times its share) when every
    # volunteer is busy: a project's tasks wait in the shared queue in proportion to it, so
    # projects share volunteers fairly. The scheduler adds the volunteers waiting for work.
    dispatch_window: int = Field(default=8, ge=1, le=10_000)
    # A task message nobody claimed within this many seconds expires and is published again
    # (a purged queue or a consumer that swallows messages costs seconds, not the project).
    republish_seconds: float = Field(default=10.0, gt=0, le=3600)
    # Results are routed by project to this many partition queues (``daig.results.<n>``), each
    # recorded by one aggregator at a time. Every process of an installation must agree.
    result_partitions: int = Field(default=DEFAULT_RESULT_PARTITIONS, ge=1, le=1024)
    # Result messages an aggregator takes per partition queue before acking, and records per
    # transaction.
    aggregator_prefetch: int = Field(default=64, ge=1, le=10_000)
    aggregator_batch_size: int = Field(default=128, ge=1, le=10_000)
    # Global weights up to this size travel inside the claim grant (0: always downloaded).
    inline_weights_max_bytes: int = Field(default=256 * 1024, ge=0, le=4 * 1024 * 1024)
    # Deltas up to this size travel inside the result message (0: always via the blob store).
    inline_delta_max_bytes: int = Field(default=256 * 1024, ge=0, le=1024 * 1024)
    # Login and sign-up limits, counted in Postgres so every API replica shares them (0 = off).
    # Failed logins are counted per (account, address) and per address, never per account
    # alone, so a stranger cannot lock an owner out: past the free failures each further
    # attempt waits login_backoff_seconds, doubled per failure up to the maximum. Failures
    # older than the window are forgotten.
    login_failures_per_user: int = Field(default=5, ge=0)  # per account from one address
    login_failures_per_ip: int = Field(default=30, ge=0)
    login_backoff_seconds: float = Field(default=1.0, gt=0)
    login_backoff_max_seconds: float = Field(default=900.0, gt=0)
    login_window_seconds: float = Field(default=3600.0, gt=0)
    signups_per_ip: int = Field(default=20, ge=0)
    signup_window_seconds: float = Field(default=3600.0, gt=0)
    # Verify volunteers' work by replicating tasks (daig.trust). Off only for a private grid
    # of trusted machines: then no result is checked against another.
    replication: bool = True
    # Accounts created from one address within this many seconds form one trust group, which
    # never verifies its own results (0 = each account is its own group; for one-machine
    # grids, where every volunteer signs up from 127.0.0.1).
    sybil_window_seconds: float = Field(default=86_400.0, ge=0)
    # A replica no other trust group took within this many seconds is opened to anyone: it
    # then verifies nothing, but a grid with one volunteer keeps going.
    replica_wait_seconds: float = Field(default=300.0, gt=0)
    # Black holes: an account whose agents take task messages off the shared queue and claim
    # (or try to claim) almost none of them. Every black_hole_sample_seconds the scheduler
    # reads the tasks consumers' counters from RabbitMQ's management API; an account that took
    # at least black_hole_min_messages within black_hole_window_seconds while its claims and
    # refused claims stayed below black_hole_claim_fraction of them is quarantined and its
    # broker user deleted. An honest agent tries to claim every message it takes.
    black_hole_detection: bool = True
    # 5: each swallowed message costs a project a republish interval (10 s), and an honest
    # agent tries every message it takes, so a handful with no tries already says enough.
    black_hole_min_messages: int = Field(default=5, ge=1)
    black_hole_claim_fraction: float = Field(default=0.1, gt=0, le=1)
    black_hole_window_seconds: float = Field(default=120.0, gt=0)
    black_hole_sample_seconds: float = Field(default=10.0, gt=0)
    # Credits a new account starts with (daig.credits.units: 1 credit = 10^6 samples x epochs
    # x model parameters). 500 starts the demo project (estimate 114 credits) four times.
    credit_signup_grant: float = Field(default=500.0, ge=0)
    # Hours after a project ends (done, failed or cancelled) that its deltas, outer-optimizer
    # velocities and intermediate weights are deleted by the scheduler; the final model, the
    # newest weights and the uploaded files stay. 0 deletes them at once; "forever" (or
    # "never") keeps them, and with them ``daig audit``'s recomputation of every round.
    delta_retention_hours: float | None = Field(default=7 * 24.0, ge=0)
    log_level: str = "INFO"
    log_json: bool = False
    # The scheduler and the aggregator serve /metrics and /healthz here (unset: not served);
    # the API serves both on its own port.
    metrics_port: int | None = Field(default=None, ge=0, le=65535)

    @field_validator("delta_retention_hours", mode="before")
    @classmethod
    def _forever(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().lower() in KEEP_FOREVER:
            return None
        if value == "":
            raise ValueError(
                "DAIG_DELTA_RETENTION_HOURS is empty: give hours (0 = at once) or 'forever'"
            )
        return value

    @field_validator("credit_signup_grant")
    @classmethod
    def _grant_in_credits(cls, grant: float) -> float:
        if grant > MAX_GRANT:
            raise ValueError(
                f"{grant:,.0f} credits is more than {MAX_GRANT:,}: the grant is in credits "
                "(1 credit = 10^6 samples x epochs x model parameters), no longer in samples x "
                "epochs x parameters; divide an old value by 1,000,000 (the default is 500)"
            )
        return grant

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

    @property
    def amqp_vhost(self) -> str:
        """The RabbitMQ virtual host of ``amqp_url``, where DAIG's queues live."""
        return amqp_vhost(self.amqp_url)

    @property
    def management_url(self) -> str:
        """Base URL of RabbitMQ's management HTTP API (no trailing slash)."""
        if self.rabbitmq_management_url:
            return self.rabbitmq_management_url.rstrip("/")
        host = urlsplit(self.amqp_url).hostname or "127.0.0.1"
        return f"http://[{host}]:15672" if ":" in host else f"http://{host}:15672"

    @property
    def management_credentials(self) -> tuple[str, str]:
        """The management API's admin user and password (``amqp_url``'s unless set)."""
        parts = urlsplit(self.amqp_url)
        user = self.rabbitmq_admin_user or unquote(parts.username or "guest")
        password = self.rabbitmq_admin_password
        if password is None:
            password = unquote(parts.password or "guest")
        return user, password


def amqp_vhost(url: str) -> str:
    """The virtual host an AMQP URL names, as pika reads it (``/`` when it names none)."""
    path = urlsplit(url).path
    return unquote(path[1:]) if len(path) > 1 else "/"
