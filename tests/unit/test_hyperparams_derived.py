"""Each hyperparameter is declared once (daig.hyperparams); the CLI, API and DB derive from it.

A knob added to ``Hyperparameters`` alone fails here until the database maps it (and its
migration adds the column: tests/integration/test_hyperparams_schema.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer
from sqlalchemy import Float, Integer, String
from typer.core import TyperCommand, TyperGroup, TyperOption
from typer.testing import CliRunner, Result

from daig.contract.http import ProjectCreate, ProjectOut
from daig.db.models import Project
from daig.hyperparams import HINTS, KNOBS, Hyperparameters, Knob, knob_of
from daig_cli import app as daig_app
from daig_cli import project as project_cli
from daig_cli.hyperparams import option_help

# --- the declaration itself -----------------------------------------------------------------


def test_every_field_is_a_knob_with_help_and_a_default() -> None:
    assert list(KNOBS) == list(Hyperparameters.model_fields)
    for name, knob in KNOBS.items():
        assert knob.help and knob.help == HINTS[name]
        assert knob.python_type in (int, float, str)
        assert knob.default is None or isinstance(knob.default, knob.python_type)
        assert knob.choices or any(b is not None for b in (knob.ge, knob.gt, knob.le, knob.lt))


def test_knobs_read_the_declared_ranges() -> None:
    assert (KNOBS["epochs"].ge, KNOBS["epochs"].le) == (1, 1000)
    assert (KNOBS["trim_fraction"].ge, KNOBS["trim_fraction"].lt) == (0.0, 0.5)
    assert KNOBS["delta_codec"].choices == ("fp32", "fp16", "int8")
    contributors = KNOBS["max_contributors"]
    assert contributors.python_type is int and contributors.default is None  # None means K


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("epochs", "between 1 and 1000"),
        ("max_norm_ratio", "between 0 and 1000000"),
        ("share", "between 0.05 and 1"),
        ("trim_fraction", "at least 0 and below 0.5"),
        ("clip_factor", "above 0 and at most 100"),
        ("aggregation", "one of mean, median, trimmed_mean, clipped_mean"),
    ],
)
def test_range_in_words(name: str, words: str) -> None:
    assert KNOBS[name].range_text() == words


def test_option_names_follow_the_field_names() -> None:
    assert KNOBS["batch_size"].option == "--batch-size"
    assert KNOBS["max_contributors"].option == "--max-contributors"


# --- API --------------------------------------------------------------------------------------


def test_api_models_carry_the_declaration() -> None:
    assert issubclass(ProjectCreate, Hyperparameters)
    assert ProjectOut.model_fields["hyperparameters"].annotation is Hyperparameters
    schema = ProjectCreate.model_json_schema()["properties"]
    for name, knob in KNOBS.items():
        assert knob_of(name, ProjectCreate.model_fields[name]) == knob
        _assert_json_schema_matches(schema[name], knob)


def _assert_json_schema_matches(field: dict[str, Any], knob: Knob) -> None:
    assert field["description"] == knob.help
    assert field.get("default") == knob.default
    if knob.choices:
        assert field["enum"] == list(knob.choices)
        return
    if knob.default is None:  # int | None: the bounds sit on the int branch
        [field] = [branch for branch in field["anyOf"] if branch.get("type") != "null"]
    for bound, key in (
        ("ge", "minimum"),
        ("gt", "exclusiveMinimum"),
        ("le", "maximum"),
        ("lt", "exclusiveMaximum"),
    ):
        assert field.get(key) == getattr(knob, bound), (knob.name, key)


def test_request_values_are_stored_and_read_back() -> None:
    body = ProjectCreate(name="p", total_tasks=20, task_size=5, aggregation="median", share=0.5)
    values = body.column_values()
    assert set(values) == set(KNOBS)
    assert values["max_contributors"] == 5  # resolved to K before it is stored
    project = Project(**values)
    assert Hyperparameters.from_row(project) == Hyperparameters.model_validate(
        body.model_dump(exclude={"name"})
    )


# --- database ---------------------------------------------------------------------------------


def test_every_knob_is_a_projects_column_as_declared() -> None:
    columns = Project.__table__.c
    for name, knob in KNOBS.items():
        assert name in columns, f"Project has no column for the hyperparameter {name}"
        column = columns[name]
        assert not column.nullable
        if knob.choices:
            assert isinstance(column.type, String)
            assert column.type.length == knob.stored.length
            assert max(len(choice) for choice in knob.choices) <= column.type.length
        else:
            assert isinstance(column.type, {int: Integer, float: Float}[knob.python_type])


def test_server_defaults_are_the_declared_defaults() -> None:
    for name, knob in KNOBS.items():
        default = Project.__table__.c[name].server_default
        if not knob.stored.server_default:
            assert default is None, name
            continue
        assert default is not None, name
        assert knob.python_type(default.arg) == knob.default, name


# --- CLI --------------------------------------------------------------------------------------


def _create_command() -> TyperCommand:
    group = typer.main.get_command(project_cli.app)
    assert isinstance(group, TyperGroup)
    command = group.commands["create"]
    assert isinstance(command, TyperCommand)
    return command


def test_create_has_one_option_per_knob_with_its_default_and_help() -> None:
    options = {p.name: p for p in _create_command().params if isinstance(p, TyperOption)}
    for name, knob in KNOBS.items():
        option = options[name]
        assert option.opts == [knob.option]
        assert option.default == knob.default
        assert option.help == option_help(knob)
        assert knob.help in option_help(knob) and knob.range_text() in option_help(knob)
        assert not option.required


def test_create_keeps_its_other_options_around_the_knobs() -> None:
    names = [p.name for p in _create_command().params]
    knobs = list(KNOBS)
    start = names.index("name") + 1
    assert names[start : start + len(knobs)] == knobs
    assert names[:start] == [
        "model",
        "data",
        "labels",
        "validation_data",
        "validation_labels",
        "name",
    ]
    assert names[start + len(knobs) :] == [
        "start",
        "wait",
        "trust_object_arrays",
        "server",
        "user",
        "password",
        "password_file",
    ]
    assert "params" not in names


@pytest.fixture
def files(tmp_path: Path) -> list[str]:
    paths = {"--model": "m.h5", "--data": "x.npy", "--labels": "y.npy"}
    arguments = []
    for option, file_name in paths.items():
        (tmp_path / file_name).write_bytes(b"")
        arguments += [option, str(tmp_path / file_name)]
    return arguments


def _create(*arguments: str) -> Result:
    return CliRunner(env={"COLUMNS": "200"}).invoke(daig_app, ["project", "create", *arguments])


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--epochs", "0"], "--epochs must be between 1 and 1000 (got 0)"),
        (["--batch-size", "70000"], "--batch-size must be between 1 and 65536"),
        (["--trim-fraction", "0.5"], "--trim-fraction must be at least 0 and below 0.5"),
        (["--aggregation", "mode"], "--aggregation must be one of mean, median"),
        (["--max-contributors", "0"], "--max-contributors must be between 1 and 10000"),
        (["--total-tasks", "4", "--task-size", "5"], "task_size (K=5) cannot exceed total_tasks"),
    ],
)
def test_bad_values_name_the_option_and_its_range(
    files: list[str], arguments: list[str], message: str
) -> None:
    result = _create(*files, *arguments)
    assert result.exit_code == 1
    assert message in " ".join(result.output.split())


def test_options_reach_the_command_as_hyperparameters(
    files: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[Hyperparameters] = []

    def check(files: dict[str, Path], params: Hyperparameters) -> None:
        seen.append(params)
        raise typer.Exit(0)  # stop before anything is uploaded

    monkeypatch.setattr(project_cli, "_numeric", lambda files, trust, scratch: files)
    monkeypatch.setattr(project_cli, "_check_locally", check)
    result = _create(*files, "--epochs", "2", "--task-size", "3", "--delta-codec", "int8")
    assert result.exit_code == 0, result.output
    assert seen == [Hyperparameters(epochs=2, task_size=3, delta_codec="int8")]
    assert seen[0].max_contributors == 3


def test_help_lists_every_knob() -> None:
    result = _create("--help")
    assert result.exit_code == 0
    for knob in KNOBS.values():
        assert knob.option in result.output
