"""DAIG's training hyperparameters, each declared once: name, type, default, range and help.

``Hyperparameters`` is the declaration; its field names are a public contract (API and CLI).
Everything else derives from it:

- the API's ``ProjectCreate`` subclasses it and ``ProjectOut`` embeds it, so requests are
  validated and documented with these ranges and help texts;
- the ``projects`` columns take their SQL type, nullability and server default from it
  (``daig.db.models.hyperparameter_column``), and ``Hyperparameters.from_row`` reads them back;
- ``daig project create`` gets one option per field, with its default, help and range
  (``daig_cli.hyperparams``);
- the GUI form builds one widget per field (``requestor_gui.views.hyperparams_form``).

A new knob is one field here, its Alembic migration, and its typed attribute on
``daig.db.models.Project`` (one line, for mypy). tests/unit/test_hyperparams_derived.py checks
that the CLI, the API and the ORM follow the declaration, and
tests/integration/test_hyperparams_schema.py that the migrated database does.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from types import UnionType
from typing import Annotated, Any, Literal, cast

import annotated_types
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.fields import FieldInfo

Aggregation = Literal["mean", "median", "trimmed_mean", "clipped_mean"]
DeltaCodec = Literal["fp32", "fp16", "int8"]
OuterOptimizer = Literal["average", "momentum", "nesterov"]


@dataclass(frozen=True)
class Stored:
    """How a knob is kept in the ``projects`` table, where its Python type does not say.

    ``length`` is the VARCHAR length of a knob with choices. ``server_default`` says whether the
    column has the declared default as its server default: the columns added after the first
    schema do (so that existing rows got a value), the first schema's columns do not.
    """

    length: int | None = None
    server_default: bool = True


FIRST_SCHEMA = Stored(server_default=False)  # columns created by migration 0001


class Hyperparameters(BaseModel):
    """Validated hyperparameters; ``max_contributors`` defaults to ``task_size``."""

    model_config = ConfigDict(extra="forbid")

    epochs: Annotated[int, FIRST_SCHEMA] = Field(
        default=5,
        ge=1,
        le=1000,
        description="Epochs each provider runs on its shard per task (passed to model.fit).",
    )
    batch_size: Annotated[int, FIRST_SCHEMA] = Field(
        default=32, ge=1, le=65536, description="Mini-batch size for model.fit on each shard."
    )
    validation_split: Annotated[float, FIRST_SCHEMA] = Field(
        default=0.0,
        ge=0.0,
        le=0.9,
        description="Fraction of each shard held out by model.fit for validation (0 = none).",
    )
    total_tasks: Annotated[int, FIRST_SCHEMA] = Field(
        default=12,
        ge=1,
        le=100_000,
        description=(
            "Number of data shards T. More shards means smaller, quicker tasks "
            "(shard i is rows [i*N/T, (i+1)*N/T))."
        ),
    )
    task_size: Annotated[int, FIRST_SCHEMA] = Field(
        default=4,
        ge=1,
        le=10_000,
        description=(
            "K: tasks whose updates are averaged per round. Small K: more rounds, usually a "
            "better model, fewer volunteers at once. Large K: more volunteers in parallel, "
            "finishes sooner, often at some cost in accuracy."
        ),
    )
    # None in a request means K; the stored value is always resolved (see ``_consistent``)
    max_contributors: Annotated[int | None, FIRST_SCHEMA] = Field(
        default=None,
        ge=1,
        le=10_000,
        description=(
            "Most tasks of this project in flight at once (default K). More than K buys nothing."
        ),
    )
    passes: Annotated[int, FIRST_SCHEMA] = Field(
        default=1,
        ge=1,
        le=1000,
        description="Sweeps over all shards; one pass is ceil(T/K) rounds.",
    )
    aggregation: Annotated[Aggregation, Stored(length=16)] = Field(
        default="mean",
        description=(
            "How a round's K updates are combined: mean (sample-weighted, the original), median "
            "(coordinate-wise), trimmed_mean (drops the extremes of each coordinate) or "
            "clipped_mean (scales each update down to clip_factor x the round's median norm). "
            "The robust ones resist a few broken or malicious volunteers."
        ),
    )
    trim_fraction: float = Field(
        default=0.2,
        ge=0.0,
        lt=0.5,
        description="trimmed_mean: fraction of the K values dropped at each end (0.2 of 5 = 1).",
    )
    clip_factor: float = Field(
        default=1.0,
        gt=0.0,
        le=100.0,
        description="clipped_mean: largest norm allowed, as a multiple of the round's median norm.",
    )
    delta_codec: Annotated[DeltaCodec, Stored(length=8)] = Field(
        default="fp32",
        description=(
            "How providers send their updates: fp32 (exact), fp16 (half the bytes) or int8 "
            "(block-wise 8-bit, about 4x fewer bytes, a slight loss of precision)."
        ),
    )
    outer_optimizer: Annotated[OuterOptimizer, Stored(length=16)] = Field(
        default="average",
        description=(
            "How the server applies a round's combined update: average (w += update, the "
            "original), momentum or nesterov (server momentum on the update, as DiLoCo)."
        ),
    )
    outer_learning_rate: float = Field(
        default=1.0,
        gt=0.0,
        le=10.0,
        description="Step size of the outer optimizer (1.0 with average = plain averaging).",
    )
    outer_momentum: float = Field(
        default=0.9,
        ge=0.0,
        lt=1.0,
        description="Momentum of the outer optimizer (momentum and nesterov only).",
    )
    max_norm_ratio: float = Field(
        default=10.0,
        ge=0.0,
        le=1e6,
        description=(
            "Reject an update whose norm exceeds this multiple of the median norm of recent "
            "accepted updates (0 = never)."
        ),
    )
    share: float = Field(
        default=1.0,
        ge=0.05,
        le=1.0,
        description=(
            "Your project's weight when projects share the volunteers (1 = an equal share). "
            "Lower it to let others, or your own other projects, go first; an operator may "
            "raise it."
        ),
    )

    verify_fraction: float = Field(
        default=0.1,
        ge=0.01,
        le=1.0,
        description=(
            "Share of trusted volunteers' tasks trained twice, by two accounts, and counted "
            "only when both agree (a new volunteer's first 10 tasks always are). Replicas "
            "cost credit; never zero, so a volunteer cannot tell when cheating is safe."
        ),
    )
    verify_tolerance: float = Field(
        default=0.05,
        gt=0.0,
        le=0.5,
        description=(
            "How far two results of one task may differ and still agree (the largest "
            "per-layer relative distance). Honest runs measured 0 apart, cheats 0.79 or more."
        ),
    )

    @model_validator(mode="after")
    def _consistent(self) -> Hyperparameters:
        if self.task_size > self.total_tasks:
            raise ValueError(
                f"task_size (K={self.task_size}) cannot exceed total_tasks "
                f"(T={self.total_tasks}): a round combines K different shards"
            )
        if self.max_contributors is None:
            self.max_contributors = self.task_size
        return self

    @property
    def contributors(self) -> int:
        assert self.max_contributors is not None
        return self.max_contributors

    def column_values(self) -> dict[str, Any]:
        """The values of the ``projects`` columns: every knob, ``max_contributors`` resolved.

        Only the declared knobs, also on subclasses (``ProjectCreate`` adds a name).
        """
        return {name: getattr(self, name) for name in Hyperparameters.model_fields}

    @classmethod
    def from_row(cls, row: object) -> Hyperparameters:
        """Read the knobs back from an object with one attribute per knob (a ``Project``)."""
        return cls.model_validate(row, from_attributes=True)


# --- the declaration read back, for the CLI, the database mapping and the tests --------------


@dataclass(frozen=True)
class Knob:
    """One declared hyperparameter in the terms its consumers need."""

    name: str
    python_type: type  # int, float or str
    default: int | float | str | None
    help: str
    choices: tuple[str, ...] = ()
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    stored: Stored = Stored()

    @property
    def option(self) -> str:
        """The command-line option, as typer spells the field's name."""
        return "--" + self.name.replace("_", "-")

    def range_text(self) -> str:
        """The allowed values in words: "between 1 and 1000", "one of fp32, fp16, int8"."""
        if self.choices:
            return "one of " + ", ".join(self.choices)
        if self.ge is not None and self.le is not None:
            return f"between {_number(self.ge)} and {_number(self.le)}"
        words: list[str] = []
        if self.ge is not None:
            words.append(f"at least {_number(self.ge)}")
        if self.gt is not None:
            words.append(f"above {_number(self.gt)}")
        if self.le is not None:
            words.append(f"at most {_number(self.le)}")
        if self.lt is not None:
            words.append(f"below {_number(self.lt)}")
        return " and ".join(words) or "any value"

    def requirement(self, value: object) -> str:
        """What a refused ``value`` should have been: "must be at least 1 (got 0)"."""
        return f"must be {self.range_text()} (got {value!r})"


def _number(value: float) -> str:
    """1.0 -> "1", 0.05 -> "0.05", 1e6 -> "1000000" (no exponents in messages)."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


PYTHON_TYPES: tuple[type, ...] = (int, float, str)
BOUNDS = (annotated_types.Ge, annotated_types.Gt, annotated_types.Le, annotated_types.Lt)


def _bound(rule: object, attribute: str) -> float:
    value = getattr(rule, attribute)
    if not isinstance(value, int | float):
        raise TypeError(f"a hyperparameter's bound must be a number, not {value!r}")
    return float(value)


def knob_of(name: str, info: FieldInfo) -> Knob:
    """Read one field of ``Hyperparameters`` as a ``Knob``."""
    annotation = info.annotation
    if typing.get_origin(annotation) is UnionType:  # X | None
        [annotation] = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
    choices: tuple[str, ...] = ()
    if typing.get_origin(annotation) is Literal:
        choices = tuple(str(value) for value in typing.get_args(annotation))
        annotation = str
    if annotation not in PYTHON_TYPES:
        raise TypeError(f"hyperparameter {name} has type {annotation!r}: use int, float or Literal")
    bounds: dict[str, float] = {}
    stored = Stored()
    for rule in info.metadata:
        if isinstance(rule, Stored):
            stored = rule
        for kind in BOUNDS:
            if isinstance(rule, kind):
                attribute = kind.__name__.lower()
                bounds[attribute] = _bound(rule, attribute)
    return Knob(
        name=name,
        python_type=cast(type, annotation),  # one of PYTHON_TYPES, checked above
        default=info.default,
        help=info.description or "",
        choices=choices,
        ge=bounds.get("ge"),
        gt=bounds.get("gt"),
        le=bounds.get("le"),
        lt=bounds.get("lt"),
        stored=stored,
    )


KNOBS: dict[str, Knob] = {
    name: knob_of(name, info) for name, info in Hyperparameters.model_fields.items()
}
HINTS: dict[str, str] = {name: knob.help for name, knob in KNOBS.items()}


def check_against_data(params: Hyperparameters, rows: int) -> None:
    """Refuse settings the uploaded data cannot support (raise ``ValueError``)."""
    if params.total_tasks > rows:
        raise ValueError(
            f"total_tasks ({params.total_tasks}) exceeds the {rows} rows of data; "
            "every shard needs at least one row"
        )
    smallest = rows // params.total_tasks
    if params.validation_split > 0 and int(smallest * (1 - params.validation_split)) < 1:
        raise ValueError(
            f"shards of {smallest} rows leave nothing to train on with validation_split "
            f"{params.validation_split}; use fewer total_tasks or a smaller validation_split"
        )
