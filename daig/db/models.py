"""SQLAlchemy 2 models: the source of truth for users, projects, rounds, tasks, claims, results.

State machines (strings; every transition and its rules: the tables in ``daig.states``):
- project: created -> queued -> running <-> paused; -> done | failed | cancelled
- task: pending (needs a task message) -> queued (message published) -> claimed -> done;
  ``lease_expires_at`` holds the latest live lease, so a claim is decided on the task row alone
- claim: active -> finished | released | expired | superseded
- result: accepted | rejected (with a reason) | failed (training error on the provider)
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, MappedColumn, mapped_column
from sqlalchemy.types import TypeEngine

from daig.hyperparams import KNOBS

JsonDoc = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    pass


class ProjectState(StrEnum):
    CREATED = "created"
    QUEUED = "queued"
    RUNNING = "running"
    PAUSED = "paused"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


class TaskState(StrEnum):
    PENDING = "pending"
    QUEUED = "queued"
    CLAIMED = "claimed"
    VERIFYING = "verifying"  # its result waits for a replica of the task to verify it
    DONE = "done"


class ClaimState(StrEnum):
    ACTIVE = "active"
    FINISHED = "finished"
    RELEASED = "released"
    EXPIRED = "expired"
    SUPERSEDED = "superseded"  # another provider's result for the same task won


class ResultStatus(StrEnum):
    ACCEPTED = "accepted"  # counted in its round (the one result of its shard that is)
    REJECTED = "rejected"
    FAILED = "failed"
    HELD = "held"  # a replicated task's result, waiting for its replicas to agree
    AGREED = "agreed"  # verified: agreed with the accepted result of its shard (paid)
    DISAGREED = "disagreed"  # verified invalid: outvoted by its replicas (payment reversed)


class RejectReason(StrEnum):
    UNKNOWN_PROJECT = "unknown_project"
    PROJECT_NOT_RUNNING = "project_not_running"
    STALE_ROUND = "stale_round"
    UNKNOWN_TASK = "unknown_task"
    DUPLICATE = "duplicate"
    UNKNOWN_CLAIM = "unknown_claim"
    WRONG_PROVIDER = "wrong_provider"
    CLAIM_RELEASED = "claim_released"
    SCHEMA_MISMATCH = "schema_mismatch"
    MISSING_BLOB = "missing_blob"
    CHECKSUM_MISMATCH = "checksum_mismatch"
    BAD_DELTA = "bad_delta"
    TRAINING_FAILED = "training_failed"
    NORM_OUTLIER = "norm_outlier"
    RESOURCE_LIMIT = "resource_limit"
    WRONG_PARTITION = "wrong_partition"  # published with another project's routing key
    QUARANTINED = "quarantined"  # its provider's account was quarantined for a bad result
    UNVERIFIED = "unverified"  # its shard settled without a verified majority it belongs to


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    signup_address: Mapped[str | None] = mapped_column(String(64))
    # Accounts created from one address within DAIG_SYBIL_WINDOW_SECONDS share a group (the
    # first one's id): replication never lets one group verify its own result.
    trust_group: Mapped[int | None] = mapped_column(Integer, index=True)


class RefreshToken(Base):
    """A long-lived login for a desktop or background agent (``POST /v1/auth/token`` with the
    ``offline_access`` scope): the client holds ``<id>.<secret>``, the server only the secret's
    sha256. It expires ``DAIG_REFRESH_TOKEN_DAYS`` after its last use, or when revoked."""

    __tablename__ = "refresh_tokens"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    secret_hash: Mapped[str] = mapped_column(String(64))  # sha256 hex of the secret part
    label: Mapped[str | None] = mapped_column(String(200))  # e.g. "DAIG window on host"
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_used_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ProviderTrust(Base):
    """A provider account's verified record and, once a result was outvoted, its quarantine."""

    __tablename__ = "provider_trust"

    provider_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    verified_valid: Mapped[int] = mapped_column(Integer, server_default="0")
    verified_invalid: Mapped[int] = mapped_column(Integer, server_default="0")
    quarantined_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    quarantine_reason: Mapped[str | None] = mapped_column(Text)
    quarantine_project: Mapped[uuid.UUID | None] = mapped_column()
    quarantine_task: Mapped[uuid.UUID | None] = mapped_column()
    lifted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    lifted_note: Mapped[str | None] = mapped_column(Text)


def hyperparameter_column(name: str) -> MappedColumn[Any]:
    """The ``projects`` column of a hyperparameter, as ``daig.hyperparams`` declares it.

    NOT NULL (``max_contributors`` is stored resolved to K), an INTEGER, a FLOAT or, for a
    knob with choices, a VARCHAR of the declared length; the declared default is its server
    default unless the knob is one of the first schema's columns, which have none.
    """
    knob = KNOBS[name]
    sql_type: TypeEngine[Any]
    if knob.choices:
        sql_type = String(knob.stored.length)
    elif knob.python_type is int:
        sql_type = Integer()
    else:
        sql_type = Float()
    server_default = str(knob.default) if knob.stored.server_default else None
    return mapped_column(sql_type, nullable=False, server_default=server_default)


class Project(Base):
    __tablename__ = "projects"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(16), default=ProjectState.CREATED, index=True)
    # hyperparameters: declared once in daig.hyperparams, which gives each column its SQL type
    # and server default; the annotations here are only for mypy
    epochs: Mapped[int] = hyperparameter_column("epochs")
    batch_size: Mapped[int] = hyperparameter_column("batch_size")
    validation_split: Mapped[float] = hyperparameter_column("validation_split")
    total_tasks: Mapped[int] = hyperparameter_column("total_tasks")
    task_size: Mapped[int] = hyperparameter_column("task_size")
    max_contributors: Mapped[int] = hyperparameter_column("max_contributors")
    passes: Mapped[int] = hyperparameter_column("passes")
    aggregation: Mapped[str] = hyperparameter_column("aggregation")
    trim_fraction: Mapped[float] = hyperparameter_column("trim_fraction")
    clip_factor: Mapped[float] = hyperparameter_column("clip_factor")
    max_norm_ratio: Mapped[float] = hyperparameter_column("max_norm_ratio")
    delta_codec: Mapped[str] = hyperparameter_column("delta_codec")
    outer_optimizer: Mapped[str] = hyperparameter_column("outer_optimizer")
    outer_learning_rate: Mapped[float] = hyperparameter_column("outer_learning_rate")
    outer_momentum: Mapped[float] = hyperparameter_column("outer_momentum")
    # weight in sharing volunteers with other projects (its dispatch window scales with it)
    share: Mapped[float] = hyperparameter_column("share")
    verify_fraction: Mapped[float] = hyperparameter_column("verify_fraction")
    verify_tolerance: Mapped[float] = hyperparameter_column("verify_tolerance")
    # published, unclaimed tasks it may have at once; sized by the scheduler every tick from
    # its share and the volunteers waiting for work (None: the base window x share)
    dispatch_window: Mapped[int | None] = mapped_column(Integer)
    # known once the files are in and the project is started
    total_rows: Mapped[int | None] = mapped_column(BigInteger)
    weight_schema: Mapped[Any | None] = mapped_column(JsonDoc)
    schema_hash: Mapped[str | None] = mapped_column(String(64))
    current_round: Mapped[int] = mapped_column(Integer, default=0)
    total_rounds: Mapped[int | None] = mapped_column(Integer)
    final_model_key: Mapped[str | None] = mapped_column(String(512))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # when retention (DAIG_DELTA_RETENTION_HOURS) deleted its deltas; rounds can no longer
    # be recomputed by the audit
    deltas_deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Elapsed training time leaves pauses out: the current one began at ``paused_at``, the
    # earlier ones add up to ``paused_seconds`` (``daig.states.rows.enter`` keeps both).
    paused_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    paused_seconds: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")


class ProviderPresence(Base):
    """A provider agent waiting for tasks: the last time it said so (volunteers online)."""

    __tablename__ = "provider_presence"

    provider_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    agent_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class ClaimRefusal(Base):
    """Claims an account was refused for a real task (stale, taken, done, its own replica, the
    cap), counted per ``REFUSAL_BUCKET_SECONDS``: an agent that acks a task message after a
    refused claim did try. The scheduler's black-hole check reads them beside ``claims``."""

    __tablename__ = "claim_refusals"

    provider_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    bucket: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    refused: Mapped[int] = mapped_column(Integer, default=0)


class ProjectFile(Base):
    __tablename__ = "project_files"

    project_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(32), primary_key=True)  # model, data, validation_...
    blob_key: Mapped[str] = mapped_column(String(512))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    filename: Mapped[str] = mapped_column(String(255))
    meta: Mapped[Any] = mapped_column(JsonDoc)  # npy header or model summary
    uploaded_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class Round(Base):
    __tablename__ = "rounds"

    project_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    index: Mapped[int] = mapped_column(Integer, primary_key=True)
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    weights_key: Mapped[str | None] = mapped_column(String(512))  # version index+1
    # results accepted so far, kept by the transaction that accepts them (closes at K)
    accepted: Mapped[int] = mapped_column(Integer, server_default="0")
    metrics: Mapped[Any | None] = mapped_column(JsonDoc)
    # loss and metrics of weights version index+1 on the requestor's validation files
    evaluation: Mapped[Any | None] = mapped_column(JsonDoc)


class Task(Base):
    __tablename__ = "tasks"
    __table_args__ = (
        UniqueConstraint("project_id", "round_index", "slot"),
        Index(
            "ix_tasks_pending",
            "project_id",
            "round_index",
            "slot",
            postgresql_where=text("state = 'pending'"),
        ),
        Index("ix_tasks_queued", "dispatched_at", postgresql_where=text("state = 'queued'")),
        Index(
            "ix_tasks_queued_round",
            "project_id",
            "round_index",
            postgresql_where=text("state = 'queued'"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    round_index: Mapped[int] = mapped_column(Integer)
    slot: Mapped[int] = mapped_column(Integer)
    shard: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), default=TaskState.PENDING)
    dispatches: Mapped[int] = mapped_column(Integer, default=0)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    dispatched_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    done_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # the latest lease of its active claims (claimed and past it: free to claim again)
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Replication: a replica points at its shard's first task (``replica_of``), which counts
    # the replicas made of it. Both train the same; neither provider can tell which it got.
    replica_of: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("tasks.id", ondelete="CASCADE"), index=True
    )
    replicas: Mapped[int] = mapped_column(Integer, server_default="0")
    created_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    # Set when no other account took a replica in time: anyone may, and then it verifies
    # nothing (keeps a grid with one volunteer live).
    any_claimer: Mapped[bool] = mapped_column(Boolean, server_default="false")


class Claim(Base):
    __tablename__ = "claims"
    __table_args__ = (
        Index("ix_claims_project_state", "project_id", "state"),
        Index(
            "ix_claims_active_lease",
            "lease_expires_at",
            postgresql_where=text("state = 'active'"),
        ),
        # An account's recent claims (the scheduler's black-hole check).
        Index("ix_claims_provider_claimed", "provider_id", "claimed_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    task_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tasks.id", ondelete="CASCADE"), index=True
    )
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    provider_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    agent_id: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), default=ClaimState.ACTIVE)
    claimed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    lease_expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Result(Base):
    __tablename__ = "results"
    __table_args__ = (
        # At most one accepted result per task: acceptance is idempotent by construction.
        Index(
            "uq_results_accepted_task",
            "task_id",
            unique=True,
            postgresql_where=text("status = 'accepted'"),
        ),
        Index("ix_results_project_round", "project_id", "round_index"),
        # A volunteer's own recent results (GET /v1/provider/results, polled by the GUI).
        Index("ix_results_provider_received", "provider_id", "received_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    message_id: Mapped[uuid.UUID] = mapped_column(unique=True)
    project_id: Mapped[uuid.UUID] = mapped_column()
    round_index: Mapped[int] = mapped_column(Integer)
    task_id: Mapped[uuid.UUID] = mapped_column()
    claim_id: Mapped[uuid.UUID | None] = mapped_column()
    provider_id: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(32))
    detail: Mapped[str | None] = mapped_column(Text)
    blob_key: Mapped[str | None] = mapped_column(String(512))
    samples: Mapped[int] = mapped_column(BigInteger, default=0)
    fit_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    history: Mapped[Any | None] = mapped_column(JsonDoc)
    delta_norm: Mapped[float | None] = mapped_column(Float)  # L2 norm of an accepted delta
    timings: Mapped[Any | None] = mapped_column(JsonDoc)  # the provider's seconds per phase
    recorded_by: Mapped[str | None] = mapped_column(String(128))  # the aggregator's id
    received_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class DeadLetter(Base):
    """A message the broker dead-lettered (unparseable, rejected, or over its delivery limit)."""

    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    queue: Mapped[str] = mapped_column(String(255))
    reason: Mapped[str] = mapped_column(String(64))  # rejected | delivery_limit | expired | ...
    message_type: Mapped[str | None] = mapped_column(String(64))
    message_id: Mapped[str | None] = mapped_column(String(64))
    project_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    task_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    body: Mapped[str] = mapped_column(Text)  # the first KiB, for the operator
    received_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class OutboxMessage(Base):
    """A broker message decided in a transaction, published after it commits (then deleted).

    Whoever commits the row publishes it right away; the scheduler publishes any that are left
    (a crash between commit and publish). Publishing twice is harmless: consumers are
    idempotent, and a task message is only an invitation to claim.
    """

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    exchange: Mapped[str] = mapped_column(String(255))
    routing_key: Mapped[str] = mapped_column(String(255))
    message_type: Mapped[str] = mapped_column(String(64))
    message_id: Mapped[uuid.UUID] = mapped_column()
    expiration_ms: Mapped[int | None] = mapped_column(Integer)  # per-message TTL in the queue
    body: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class AggregatorPartition(Base):
    """Who records the results of one partition of the projects; ``epoch`` fences old owners.

    An aggregator takes a partition (``epoch`` + 1) when the broker makes it the partition
    queue's single active consumer; every batch it records updates the row first, so batches
    of one partition are serialized across aggregators and a former owner cannot commit.
    """

    __tablename__ = "aggregator_partitions"

    partition: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    owner: Mapped[str | None] = mapped_column(String(128))
    epoch: Mapped[int] = mapped_column(BigInteger, server_default="0")
    changed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AggregatorProcess(Base):
    """A live aggregator (``seen_at`` refreshed every few seconds), for fair partition shares."""

    __tablename__ = "aggregators"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class RateEvent(Base):
    """One counted event (e.g. a failed login) for rate limits shared by every API replica."""

    __tablename__ = "rate_events"
    __table_args__ = (Index("ix_rate_events_bucket_key_at", "bucket", "key", "at"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    bucket: Mapped[str] = mapped_column(String(32))  # e.g. "login_user", "login_ip", "signup_ip"
    key: Mapped[str] = mapped_column(String(255))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class CreditTransfer(Base):
    """One movement of credit: a group of entries that sum to zero (double entry).

    Append-only (a database trigger refuses UPDATE and DELETE). ``(kind, reference)`` is
    unique, so posting the same movement twice (a redelivered result, a retried grant) is a
    no-op: ``work`` transfers are keyed by task id, ``grant`` transfers by user id.
    """

    __tablename__ = "credit_transfers"
    __table_args__ = (UniqueConstraint("kind", "reference", name="uq_credit_transfers_kind_ref"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # grant | work
    reference: Mapped[str] = mapped_column(String(64))
    project_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    task_id: Mapped[uuid.UUID | None] = mapped_column()
    result_id: Mapped[uuid.UUID | None] = mapped_column()
    memo: Mapped[str] = mapped_column(String(255), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class CreditEntry(Base):
    """One side of a transfer: ``amount`` > 0 credits ``account``, < 0 debits it.

    Accounts are ``user:<id>`` (an account's balance is the sum of its entries) or
    ``system:grants`` (where sign-up grants come from; it goes negative by what was granted).
    """

    __tablename__ = "credit_entries"
    __table_args__ = (Index("ix_credit_entries_account", "account", "id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    transfer_id: Mapped[int] = mapped_column(ForeignKey("credit_transfers.id"), index=True)
    account: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[int | None] = mapped_column(Integer)  # the account's user, if any
    amount: Mapped[int] = mapped_column(BigInteger)
