"""Hyperparameters: defaults, ranges, consistency, and fit with the uploaded data."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from daig.hyperparams import HINTS, Hyperparameters, check_against_data


def test_defaults() -> None:
    params = Hyperparameters()
    assert params.model_dump() == {
        "epochs": 5,
        "batch_size": 32,
        "validation_split": 0.0,
        "total_tasks": 12,
        "task_size": 4,
        "max_contributors": 4,
        "passes": 1,
        "aggregation": "mean",
        "trim_fraction": 0.2,
        "clip_factor": 1.0,
        "max_norm_ratio": 10.0,
        "delta_codec": "fp32",
        "outer_optimizer": "average",
        "outer_learning_rate": 1.0,
        "outer_momentum": 0.9,
        "share": 1.0,
        "verify_fraction": 0.1,
        "verify_tolerance": 0.05,
    }
    assert params.contributors == 4


def test_max_contributors_defaults_to_task_size() -> None:
    assert Hyperparameters(total_tasks=20, task_size=7).max_contributors == 7


def test_explicit_max_contributors_is_kept() -> None:
    params = Hyperparameters(task_size=2, max_contributors=9)
    assert params.max_contributors == 9
    assert params.contributors == 9


def test_task_size_above_total_tasks_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"task_size \(K=5\) cannot exceed total_tasks"):
        Hyperparameters(total_tasks=4, task_size=5)


def test_task_size_equal_to_total_tasks_is_fine() -> None:
    assert Hyperparameters(total_tasks=4, task_size=4).task_size == 4


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("epochs", 0),
        ("epochs", 1001),
        ("batch_size", 0),
        ("validation_split", -0.1),
        ("validation_split", 0.95),
        ("total_tasks", 0),
        ("task_size", 0),
        ("max_contributors", 0),
        ("passes", 0),
        ("epochs", "many"),
    ],
)
def test_out_of_range_values_are_refused(field: str, value: object) -> None:
    with pytest.raises(ValidationError) as error:
        Hyperparameters(**{field: value})
    assert field in str(error.value)


def test_unknown_field_is_refused() -> None:
    with pytest.raises(ValidationError, match="learning_rate"):
        Hyperparameters(learning_rate=0.1)


def test_json_round_trip() -> None:
    params = Hyperparameters(epochs=2, total_tasks=30, task_size=6, passes=3)
    assert Hyperparameters.model_validate_json(params.model_dump_json()) == params


def test_every_field_has_a_hint() -> None:
    assert set(HINTS) == set(Hyperparameters.model_fields)
    for name, field in Hyperparameters.model_fields.items():
        assert field.description == HINTS[name]


def test_check_against_data_accepts_enough_rows() -> None:
    check_against_data(Hyperparameters(total_tasks=12, task_size=4), rows=12)
    check_against_data(Hyperparameters(total_tasks=12, validation_split=0.5), rows=24)


def test_more_shards_than_rows_is_refused() -> None:
    with pytest.raises(ValueError, match=r"total_tasks \(12\) exceeds the 11 rows"):
        check_against_data(Hyperparameters(total_tasks=12), rows=11)


def test_validation_split_leaving_no_training_rows_is_refused() -> None:
    # 23 rows in 12 shards: the smallest has 1 row; holding out any of it leaves none.
    with pytest.raises(ValueError, match="shards of 1 rows leave nothing to train on"):
        check_against_data(Hyperparameters(total_tasks=12, validation_split=0.2), rows=23)
