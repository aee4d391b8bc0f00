"""Request and response bodies of the HTTP API (what ``/docs`` shows), shared by both ends.

The API declares these as its routes' bodies and response models; ``daig.client`` parses every
answer into them, so a renamed field fails mypy on the client, not a volunteer at run time.
Plain pydantic: importable without FastAPI or SQLAlchemy.

Strict in, tolerant out. The server validates requests as declared (``extra="forbid"`` where
set, and ``Hyperparameters`` forbids unknown knobs). Clients parse answers with
``parse_answer``, which ignores fields it does not know, nested ones included, so an older
client keeps working against a newer server that added a field.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter

from daig.hyperparams import Hyperparameters

# Text without control characters: Postgres cannot store NUL, and names have no use for the rest.
PRINTABLE = r"^[^\x00-\x1f\x7f]*$"
_CONTROLS = {code: "\ufffd" for code in [*range(0x20), 0x7F]}


def printable(text: str) -> str:
    """``text`` with each control character replaced by U+FFFD (for names we only display)."""
    return text.translate(_CONTROLS)


def _refuse_controls(text: str) -> str:
    if printable(text) != text:
        raise ValueError("must not contain control characters (such as NUL, tab or newline)")
    return text


# A string without control characters; the pattern documents it in the OpenAPI description.
PrintableStr = Annotated[str, AfterValidator(_refuse_controls)]


class SignupRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=3, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")
    password: str = Field(min_length=8, max_length=256)


class UserOut(BaseModel):
    id: int
    username: str


# The ``reason`` of a 401 for an access token that is invalid or expired: a client holding a
# refresh token renews it (``/v1/auth/refresh``) and tries once more.
INVALID_TOKEN = "invalid_token"


class Token(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int
    refresh_token: str | None = Field(
        default=None,
        description="Only when the ``offline_access`` scope was asked for: a long-lived, "
        "revocable login that ``/v1/auth/refresh`` exchanges for new access tokens",
    )


class RefreshRequest(BaseModel):
    """``POST /v1/auth/refresh`` (form or JSON), as OAuth2's refresh grant."""

    model_config = ConfigDict(extra="forbid")
    grant_type: str = Field(default="refresh_token", pattern=r"^refresh_token$")
    refresh_token: str = Field(min_length=1, max_length=200)


class LogoutRequest(BaseModel):
    """``POST /v1/auth/logout`` (form or JSON): the refresh token to revoke."""

    model_config = ConfigDict(extra="forbid")
    refresh_token: str = Field(min_length=1, max_length=200)


class ProjectCreate(Hyperparameters):
    """A new project: a name plus DAIG's hyperparameters."""

    name: PrintableStr = Field(
        default="project", min_length=1, max_length=200, json_schema_extra={"pattern": PRINTABLE}
    )


class FileOut(BaseModel):
    kind: str
    filename: str
    size: int
    sha256: str
    meta: dict[str, Any]


class VerificationOut(BaseModel):
    """How a project's replicated results were verified (``daig.trust``)."""

    settled: int = Field(description="Replicated shards settled with a verified majority")
    agreed: int = Field(description="Results that agreed with their shard's counted result")
    disagreed: int = Field(description="Results outvoted by their replicas (payment reversed)")
    waiting: int = Field(description="Results held until their replicas arrive")
    quarantined: list[str] = Field(
        default_factory=list, description="Accounts quarantined for a result in this project"
    )

    @property
    def summary(self) -> str:
        """For people: "5 agreed, 1 disagreed, 2 waiting; quarantined: x" ("" if none yet)."""
        if not (self.settled or self.disagreed or self.waiting):
            return ""
        text = f"{self.agreed} agreed, {self.disagreed} disagreed"
        if self.waiting:
            text += f", {self.waiting} waiting"
        if self.quarantined:
            text += f"; quarantined: {', '.join(self.quarantined)}"
        return text


class StandingOut(BaseModel):
    """A volunteer's verified record and, if it was outvoted, the quarantine."""

    verified_valid: int
    verified_invalid: int
    trusted: bool = Field(description="Only some of its tasks are replicated now")
    quarantined: bool
    quarantined_at: datetime | None = None
    reason: str | None = None
    project_name: str | None = Field(default=None, description="Where it was caught")
    task_id: uuid.UUID | None = None
    lifted_at: datetime | None = None
    results_waiting: int = Field(description="Its results held until their replicas arrive")
    summary: str


class TaskFailureOut(BaseModel):
    """The latest training failure a provider reported in the project's current round."""

    round: int
    shard: int
    failures: int = Field(description="Times this shard's task failed so far (then retried)")
    reason: str = Field(
        description="Exception type and message, without the volunteer's paths or traceback"
    )
    at: datetime


class ProjectOut(BaseModel):
    """A project's settings and where its training stands."""

    id: uuid.UUID
    name: str
    state: str
    hyperparameters: Hyperparameters
    round: int = Field(description="Rounds closed so far (= weights version of the current model)")
    total_rounds: int | None
    accepted_tasks: int
    total_task_results: int | None = Field(description="Accepted results needed to finish")
    progress: float = Field(description="Fraction of accepted results, 0..1")
    active_contributors: int = Field(
        description="Deprecated (means tasks_in_flight): use contributors or tasks_in_flight"
    )
    contributors: int = Field(
        default=0, description="Distinct volunteers (accounts) whose results were accepted"
    )
    tasks_in_flight: int = Field(default=0, description="Tasks claimed and still training")
    volunteers_online: int | None = Field(
        default=None,
        description="Volunteers online now (daig.presence), for queued and running projects",
    )
    elapsed_seconds: float | None = Field(
        default=None, description="Training time so far, pauses left out; None before start"
    )
    files: list[FileOut]
    latest_metrics: dict[str, float] | None
    latest_evaluation: dict[str, Any] | None = None
    verification: VerificationOut | None = None
    error: str | None
    last_failure: TaskFailureOut | None = None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @property
    def waiting_hint(self) -> str:
        """ "waiting for volunteers: N online now" while it trains with no task in flight
        ("" otherwise, or from a server that does not count volunteers)."""
        if self.state not in ("queued", "running") or self.tasks_in_flight:
            return ""
        if self.volunteers_online is None:
            return ""
        return f"waiting for volunteers: {self.volunteers_online} online now"


class RoundOut(BaseModel):
    index: int = Field(description="0-based; its closing writes weights version index+1")
    opened_at: datetime
    closed_at: datetime | None
    accepted: int
    rejected: int
    metrics: dict[str, Any] | None
    evaluation: dict[str, Any] | None = Field(
        default=None, description="Weights version index+1 on the validation files, if given"
    )

    @property
    def number(self) -> int:
        """The round as people count it, from 1: after round r closes, a project is at
        "round r of R" (``ProjectOut.round`` counts closed rounds)."""
        return self.index + 1


class ClaimRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    agent_id: PrintableStr = Field(
        min_length=1, max_length=64, json_schema_extra={"pattern": PRINTABLE}
    )


class RemoteArray(BaseModel):
    """Rows of an ``.npy`` blob: GET ``url`` with ``Range: bytes=start-(end-1)``."""

    url: str
    byte_start: int
    byte_end: int
    dtype: str
    row_shape: list[int]
    rows: int


class ClaimGrant(BaseModel):
    """Everything a provider needs for one task; valid while the lease is renewed."""

    claim_id: uuid.UUID
    task_id: uuid.UUID
    project_id: uuid.UUID
    project_name: str = Field(default="", description="The project's name, for the volunteer")
    owner_name: str = Field(default="", description="The user name of the project's owner")
    round: int
    shard: int
    lease_seconds: float
    model_url: str
    model_sha256: str
    weights_url: str
    weights_inline: str | None = Field(
        default=None,
        description="The global weights (base64 of the stream weights_url serves), when small",
    )
    weight_schema: list[list[Any]]
    schema_hash: str
    data: RemoteArray
    labels: RemoteArray
    epochs: int
    batch_size: int
    validation_split: float
    result_key: str
    result_url: str
    result_max_bytes: int
    result_routing_key: str = Field(
        description="Publish the result to the results exchange with this routing key"
    )
    delta_codec: str = Field(description="Encode the delta with this codec (fp32, fp16, int8)")
    inline_max_bytes: int = Field(description="Send deltas up to this size inside the message")


class Lease(BaseModel):
    claim_id: uuid.UUID
    lease_seconds: float


class ProviderConfig(BaseModel):
    """Where a provider agent receives tasks and sends results, as its own broker user.

    ``amqp_url`` carries that user's credentials; result messages must set their ``user_id``
    property to ``broker_user`` (RabbitMQ checks it; the aggregator requires it).
    """

    amqp_url: str
    broker_user: str
    tasks_queue: str
    results_exchange: str
    results_routing_key: str = Field(
        description="Deprecated: results are partitioned; use each grant's result_routing_key"
    )
    lease_seconds: float
    user_id: int


class Dependency(BaseModel):
    """One dependency of the API as ``/healthz`` sees it."""

    ok: bool
    error: str | None = None
    queues: dict[str, int] | None = Field(default=None, description="Ready messages per queue")


class Health(BaseModel):
    """``/healthz``: ``status`` is "ok" when the database and the broker both answer."""

    status: str
    database: Dependency
    broker: Dependency


# --- credits: amounts are credits, exact to 6 decimals (daig.credits.units: 1 credit =
# 10^6 samples x epochs x model parameters; the ledger counts those work units) -----------------


class BalanceOut(BaseModel):
    """Your account: ``balance`` = ``granted`` + ``earned`` - ``spent``."""

    balance: float
    granted: float
    earned: float
    spent: float
    committed: float  # still to be spent by your unfinished projects (their estimates)
    available: float  # balance - committed: what a new project may cost


class HistoryLineOut(BaseModel):
    """One entry of your account, with the balance just after it."""

    entry_id: int
    at: datetime
    kind: str  # grant | work
    amount: float  # > 0 credited to you, < 0 debited
    balance_after: float
    project_id: uuid.UUID | None
    project_name: str | None = None
    task_id: uuid.UUID | None
    memo: str


class ProviderResultOut(BaseModel):
    """One result a volunteer sent, as the servers recorded it (newest first)."""

    message_id: uuid.UUID
    task_id: uuid.UUID
    project_id: uuid.UUID
    project_name: str | None = Field(description="None if the project was deleted since")
    round: int = Field(description="Numbered from 0, as in grants; show it plus one")
    shard: int | None
    status: str = Field(description="accepted, rejected, failed, held, agreed or disagreed")
    reason: str | None = Field(description="Why it was rejected or failed, as a short code")
    detail: str | None = Field(description="The reason in words")
    received_at: datetime
    fit_seconds: float
    credits: float = Field(description="Credits it earned this account (net of any reversal)")


class ProjectCostOut(BaseModel):
    """What a project has cost so far and is expected to cost in all."""

    project_id: uuid.UUID
    state: str
    estimate: float | None  # None until the model and data are uploaded; replicas included
    replicas: float = Field(
        default=0,
        description="Part of the estimate for replicated tasks, at the project's "
        "verify_fraction (new volunteers' tasks are all replicated: up to the rest again)",
    )
    spent: float
    paid_tasks: int
    remaining: float | None


class VolunteersOut(BaseModel):
    """Volunteers online now (definition: ``daig.presence``)."""

    online: int = Field(description="Accounts with an agent online")
    agents: int = Field(description="Agents online (one account may run several)")
    window_seconds: float = Field(description="How recently an agent must have been seen")


class PresenceRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    agent_id: PrintableStr = Field(
        min_length=1, max_length=64, json_schema_extra={"pattern": PRINTABLE}
    )


class TimeEstimateOut(BaseModel):
    """How long a project would train with the volunteers online now (``daig.estimates``)."""

    volunteers_online: int
    agents_online: int
    seconds: float | None = Field(description="None: no volunteer online, or cost unknown")
    units_per_second: float = Field(
        description="Credits' worth of work one agent does per second (claim to result)"
    )
    measured: bool = Field(description="units_per_second measured on recent results")
    summary: str = Field(description="The estimate in words, or why there is none")


class EstimateOut(BaseModel):
    """What a project will cost and how long it will take, shown before Start."""

    cost: ProjectCostOut
    time: TimeEstimateOut


class ContributorOut(BaseModel):
    """A provider's credits earned for accepted work, and how many tasks that was."""

    rank: int
    user_id: int
    username: str
    credits: float
    tasks: int


# --- reading answers ---------------------------------------------------------------------------

A = TypeVar("A")
_ADAPTERS: dict[object, TypeAdapter[Any]] = {}  # building one costs more than most answers


def _adapter(shape: type[A]) -> TypeAdapter[A]:
    adapter = _ADAPTERS.get(shape)
    if adapter is None:
        adapter = _ADAPTERS[shape] = TypeAdapter(shape)
    return adapter


def parse_answer(shape: type[A], body: Any) -> A:
    """``body`` (decoded JSON) as ``shape`` (a model or ``list[Model]``), unknown fields ignored.

    Raises ``pydantic.ValidationError`` when a declared field is missing or of the wrong type.
    """
    return _adapter(shape).validate_python(body, extra="ignore")
