"""The table models work without any window (and pass Qt's model tester)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from PyQt5.QtCore import Qt

from daig.contract.http import ProjectOut
from requestor_gui.checks import Layer
from requestor_gui.models import (
    IdRole,
    LayerTableModel,
    ProgressRole,
    ProjectTableModel,
    RoundTableModel,
)
from tests.helpers.gui import project_out, round_out

P1, P2, OTHER = (uuid.UUID(int=n) for n in (1, 2, 3))


def _project(**changes: object) -> ProjectOut:
    now = datetime.now(UTC)
    return project_out(
        **{
            "id": P1,
            "name": "digits",
            "state": "running",
            "round": 2,
            "total_rounds": 8,
            "progress": 0.25,
            "contributors": 3,
            "started_at": (now - timedelta(seconds=40)).isoformat(),
            "finished_at": None,
            "error": None,
        }
        | changes
    )


def _cells(model, row: int = 0) -> list[str]:
    return [model.index(row, c).data() for c in range(model.columnCount())]


def test_project_rows(qtmodeltester) -> None:
    model = ProjectTableModel()
    model.set_projects([_project(), _project(id=P2, state="created", total_rounds=None)])
    qtmodeltester.check(model)
    cells = _cells(model)
    assert cells[:5] == ["digits", "Training", "2 of 8", "25%", "3"]
    assert cells[5] == "40 s" or cells[5] == "41 s"
    assert cells[6].endswith("s")  # 2 rounds in 40 s: about 2 min left
    assert model.index(0, 3).data(ProgressRole) == 0.25
    assert model.index(1, 0).data(IdRole) == str(P2)
    assert _cells(model, 1)[1:3] == ["Not started", "—"]
    assert model.headerData(2, Qt.Orientation.Horizontal) == "Round"


def test_refreshing_the_same_projects_keeps_rows(qtbot) -> None:
    model = ProjectTableModel()
    model.set_projects([_project()])
    with qtbot.waitSignal(model.dataChanged), qtbot.assertNotEmitted(model.modelReset):
        model.set_projects([_project(round=3)])
    assert model.index(0, 2).data() == "3 of 8"
    with qtbot.waitSignal(model.modelReset):
        model.set_projects([_project(id=OTHER)])


def test_round_rows_show_the_metrics_that_exist(qtmodeltester) -> None:
    now = datetime.now(UTC)
    opened = now - timedelta(seconds=30)
    model = RoundTableModel()
    model.set_rounds(
        [
            round_out(**{
                "index": 0,
                "opened_at": opened.isoformat(),
                "closed_at": now.isoformat(),
                "accepted": 4,
                "rejected": 1,
                "metrics": {"loss": 0.51234, "accuracy": 0.8, "val_loss": 0.6, "samples": 9},
                "evaluation": {"loss": 0.7, "accuracy": 0.75},
            }),
            round_out(**{"index": 1, "opened_at": now.isoformat(), "closed_at": None, "accepted": 1,
             "rejected": 0, "metrics": None, "evaluation": {"error": "the model is gone"}}),
        ]
    )  # fmt: skip
    qtmodeltester.check(model)
    assert model.columns == ["Round", "Accepted", "Rejected", "loss", "accuracy", "val_loss",
                             "held_out_loss", "held_out_accuracy",
                             "Closed", "Duration"]  # fmt: skip
    assert model.headerData(7, Qt.Orientation.Horizontal) == "held-out\naccuracy"
    first = _cells(model)
    assert first[:8] == ["1", "4", "1", "0.5123", "0.8000", "0.6000", "0.7000", "0.7500"]
    assert first[9] == "30 s"
    assert _cells(model, 1)[3:] == ["—", "—", "—", "—", "—", "open", "—"]


def test_layer_rows(qtmodeltester) -> None:
    model = LayerTableModel()
    model.set_layers(
        [Layer("dense", "Dense", "units 64", 4160), Layer("x", "InputLayer", "", None)]
    )
    qtmodeltester.check(model)
    assert _cells(model) == ["dense", "Dense", "units 64", "4,160"]
    assert _cells(model, 1)[3] == "—"
