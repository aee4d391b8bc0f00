"""``daig project create`` refuses every hyperparameter out of its range naming the option
and the range (issue 15: "input should be greater than or equal to 1" named neither)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from daig.hyperparams import KNOBS, Knob
from daig_cli import app as daig_app


def out_of_range(knob: Knob) -> str:
    """A value the knob refuses, as typed on the command line."""
    if knob.choices:
        return "bogus"
    number: float
    if knob.le is not None:
        number = knob.le + 1
    elif knob.lt is not None:
        number = knob.lt
    elif knob.ge is not None:
        number = knob.ge - 1
    else:
        assert knob.gt is not None, f"{knob.name} has no range to leave"
        number = knob.gt
    return str(int(number)) if knob.python_type is int else repr(float(number))


@pytest.fixture
def files(tmp_path: Path) -> list[str]:
    arguments = []
    for option, file_name in {"--model": "m.h5", "--data": "x.npy", "--labels": "y.npy"}.items():
        (tmp_path / file_name).write_bytes(b"")
        arguments += [option, str(tmp_path / file_name)]
    return arguments


@pytest.mark.parametrize("knob", KNOBS.values(), ids=list(KNOBS))
def test_every_hyperparameter_out_of_range_names_its_option_and_range(
    knob: Knob, files: list[str]
) -> None:
    value = out_of_range(knob)
    result = CliRunner(env={"COLUMNS": "300"}).invoke(
        daig_app, ["project", "create", *files, knob.option, value]
    )
    assert result.exit_code == 1, result.output
    text = " ".join(result.output.split())
    assert f"{knob.option} must be {knob.range_text()}" in text
    assert "Input should be" not in text  # pydantic's words, which name no option
