"""Targets for ``daig.sandbox.start_sandboxed`` in tests: what a sandboxed child sees and does.

Kept free of heavy imports, so a test can tell that nothing imported numpy before the target.
"""

from __future__ import annotations

import os
import sys
import time
from multiprocessing.connection import Connection

WATCHED_MODULES = ("numpy", "tensorflow", "keras", "sqlalchemy", "daig.settings")


def report(connection: Connection, *args: object) -> None:
    """Send the child's environment, its arguments and which heavy modules it already imported;
    then wait until the parent closes the pipe."""
    connection.send(
        {
            "environ": dict(os.environ),
            "args": list(args),
            "imported": [name for name in WATCHED_MODULES if name in sys.modules],
        }
    )
    try:  # stay alive until the parent is done looking at this process
        connection.recv()
    except EOFError:
        return


def sleep_forever(connection: Connection) -> None:
    """Ignore the pipe and never return: only a kill (or its parent's death) ends it."""
    while True:
        time.sleep(1)
