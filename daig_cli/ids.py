"""Project ids as people type them: any unique prefix of the id, as git takes commit ids.

``daig project list`` may show ids cut short; every command taking a project id accepts the
start of one (with or without its dashes) and says which projects an ambiguous prefix matches.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence

from daig.client import DaigClient
from daig.contract.http import ProjectOut
from daig_cli.output import fail

_PREFIX = re.compile(r"^[0-9a-f-]+$")


class UnknownProject(ValueError):
    """No project, or more than one, matches the prefix; ``str()`` says which and what to do."""


def match(prefix: str, projects: Sequence[ProjectOut]) -> ProjectOut:
    """The one project whose id starts with ``prefix``, or ``UnknownProject`` saying why."""
    wanted = prefix.strip().lower()
    if not wanted or not _PREFIX.match(wanted):
        raise UnknownProject(
            f"{prefix!r} is not a project id: ids are hexadecimal digits and dashes "
            "(daig project list shows them)"
        )
    bare = wanted.replace("-", "")
    found = [p for p in projects if str(p.id).startswith(wanted) or p.id.hex.startswith(bare)]
    if not found:
        raise UnknownProject(
            f"no project of yours has an id starting with {prefix} (daig project list shows them)"
        )
    if len(found) > 1:
        listed = ", ".join(f"{p.id} ({p.name})" for p in found)
        raise UnknownProject(
            f"{prefix} is ambiguous: it starts the ids of {len(found)} projects: {listed}; "
            "type more of the id"
        )
    return found[0]


def resolve(client: DaigClient, given: str) -> str:
    """The whole id of the project ``given`` names (a whole id is used as it is).

    Raises ``ClientError`` if the projects cannot be listed; exits on a bad prefix.
    """
    try:
        return str(uuid.UUID(given))
    except ValueError:
        pass
    try:
        return str(match(given, client.projects()).id)
    except UnknownProject as exc:
        fail(str(exc))
