"""The migrated ``projects`` table holds every declared hyperparameter as declared.

The ORM side is checked in tests/unit/test_hyperparams_derived.py; this compares the
declaration with what the Alembic migrations actually built in Postgres, so a knob added
without its migration (or a migration whose server default disagrees) fails here.
"""

from __future__ import annotations

from sqlalchemy import Engine, Float, Integer, String, inspect

from daig.hyperparams import KNOBS


def _value(default: str) -> str:
    """A reflected server default without its cast or quotes: ``'mean'::character varying``."""
    return default.split("::")[0].strip("'")


def test_migrated_projects_columns_match_the_declaration(engine: Engine) -> None:
    columns = {column["name"]: column for column in inspect(engine).get_columns("projects")}
    for name, knob in KNOBS.items():
        assert name in columns, f"no migration adds projects.{name}"
        column = columns[name]
        assert not column["nullable"], name
        if knob.choices:
            assert isinstance(column["type"], String), name
            assert column["type"].length == knob.stored.length, name
        else:
            assert isinstance(column["type"], {int: Integer, float: Float}[knob.python_type]), name
        if knob.stored.server_default:
            assert column["default"] is not None, f"projects.{name} has no server default"
            assert knob.python_type(_value(column["default"])) == knob.default, name
        else:
            assert column["default"] is None, name
