"""Project ids by any unique prefix, as git takes commit ids (``daig_cli.ids``)."""

from __future__ import annotations

import uuid

import pytest

from daig_cli.ids import UnknownProject, match
from tests.helpers.gui import project_out

A = project_out(id=uuid.UUID("3f2a0000-0000-4000-8000-000000000001"), name="alpha")
B = project_out(id=uuid.UUID("3f2b0000-0000-4000-8000-000000000002"), name="beta")
C = project_out(id=uuid.UUID("c0ffee00-0000-4000-8000-000000000003"), name="gamma")
PROJECTS = [A, B, C]


@pytest.mark.parametrize("prefix", ["3f2a", "3F2A", "c", "c0ffee00-0", "c0ffee000", str(A.id)])
def test_a_unique_prefix_names_its_project(prefix: str) -> None:
    expected = A if prefix.lower().startswith("3f2a") else C
    assert match(prefix, PROJECTS) is expected


def test_an_ambiguous_prefix_lists_the_candidates() -> None:
    with pytest.raises(UnknownProject) as caught:
        match("3f2", PROJECTS)
    message = str(caught.value)
    assert "3f2 is ambiguous" in message
    assert f"{A.id} (alpha)" in message and f"{B.id} (beta)" in message
    assert str(C.id) not in message


@pytest.mark.parametrize(
    ("prefix", "words"),
    [
        ("ab", "no project of yours has an id starting with ab"),
        ("", "is not a project id"),
        ("xyz", "is not a project id"),
    ],
)
def test_an_unknown_prefix_says_so(prefix: str, words: str) -> None:
    with pytest.raises(UnknownProject, match=words):
        match(prefix, PROJECTS)
