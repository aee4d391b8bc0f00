"""What the desktop client shows of verification: a project's replicated results and the
quarantined accounts, and a volunteer's standing in the provider's credits panel."""

from __future__ import annotations

from daig.contract.http import StandingOut, VerificationOut
from requestor_gui.views.credits import CreditsPanel
from requestor_gui.views.project_detail import verification_text
from requestor_gui.workers import Runner
from tests.helpers.gui import project_out


def test_a_project_without_replicated_results_shows_a_dash() -> None:
    assert verification_text(project_out()) == "—"
    idle = VerificationOut(settled=0, agreed=0, disagreed=0, waiting=0)
    assert verification_text(project_out(verification=idle)) == "—"


def test_a_project_shows_agreed_disagreed_waiting_and_who_was_quarantined() -> None:
    check = VerificationOut(settled=5, agreed=5, disagreed=1, waiting=2, quarantined=["mallory"])
    assert (
        verification_text(project_out(verification=check))
        == "5 agreed, 1 disagreed, 2 waiting; quarantined: mallory"
    )


def _standing(**fields: object) -> StandingOut:
    base: dict[str, object] = {
        "verified_valid": 3,
        "verified_invalid": 0,
        "trusted": False,
        "quarantined": False,
        "results_waiting": 0,
        "summary": "new: 3 of 10 results verified before your tasks are checked only sometimes",
    }
    return StandingOut.model_validate(base | fields)


def test_the_provider_panel_shows_the_standing_and_a_quarantine(qtbot) -> None:
    panel = CreditsPanel(Runner(), provider=True)
    qtbot.addWidget(panel)
    panel._show_standing(_standing(results_waiting=1))
    assert panel.standing.text().startswith("Standing: new: 3 of 10")
    assert "1 result(s) waiting" in panel.standing.text()
    assert not panel.message.is_error
    panel._show_standing(
        _standing(quarantined=True, reason="its result was outvoted", summary="quarantined")
    )
    assert panel.message.is_error
    assert "quarantined" in panel.message.text()


def test_the_requestor_panel_has_no_standing(qtbot) -> None:
    panel = CreditsPanel(Runner(), provider=False)
    qtbot.addWidget(panel)
    assert not panel.standing.isVisibleTo(panel)
