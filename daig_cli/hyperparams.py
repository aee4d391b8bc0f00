"""Command-line options for the hyperparameters, one per field of ``Hyperparameters``.

Typer reads a command's options from its signature, so ``hyperparameter_options`` gives the
command a signature with one option per declared knob (name, type, default, help and range
from ``daig.hyperparams``) in place of its ``params`` argument, and calls it with the validated
``Hyperparameters``. A bad value is refused naming the option and its range.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, cast

import typer
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from daig.hyperparams import KNOBS, Hyperparameters, Knob
from daig_cli.output import fail

PARAMS = "params"  # the argument of the decorated command that receives the hyperparameters


def option_help(knob: Knob) -> str:
    return f"{knob.help} Allowed: {knob.range_text()}."


def _option(knob: Knob) -> inspect.Parameter:
    return inspect.Parameter(
        knob.name,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
        default=typer.Option(knob.default, knob.option, help=option_help(knob)),
        annotation=knob.python_type,
    )


def problem(error: ErrorDetails) -> str:
    """One validation error in the command line's terms."""
    field = str(error["loc"][0]) if error["loc"] else ""
    if field in KNOBS:
        knob = KNOBS[field]
        return f"{knob.option} {knob.requirement(error['input'])}"
    return error["msg"].removeprefix("Value error, ")  # a rule across knobs, in its own words


def parse(values: dict[str, Any]) -> Hyperparameters:
    """The options' values as ``Hyperparameters``; exits naming each bad option and its range."""
    try:
        return Hyperparameters(**values)
    except ValidationError as exc:
        fail("; ".join(problem(error) for error in exc.errors()))


def hyperparameter_options(command: Callable[..., None]) -> Callable[..., None]:
    """``command`` with one option per hyperparameter where its ``params`` argument was."""
    signature = inspect.signature(command, eval_str=True)
    parameters = list(signature.parameters.values())
    index = [p.name for p in parameters].index(PARAMS)
    parameters[index : index + 1] = [_option(knob) for knob in KNOBS.values()]

    @functools.wraps(command)
    def with_hyperparameters(**options: Any) -> None:
        options[PARAMS] = parse({name: options.pop(name) for name in KNOBS})
        command(**options)

    # typer (through inspect.signature) reads this instead of the wrapped function's signature
    cast(Any, with_hyperparameters).__signature__ = signature.replace(parameters=parameters)
    return with_hyperparameters
