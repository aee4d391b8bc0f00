"""The one way DAIG's local tooling runs ``rabbitmqctl`` (vhosts, broker restarts, listings).

Local clusters, benchmarks, scripts and tests all create and delete vhosts through
``rabbitmqctl``; this wrapper gives every caller the same timeout and the same clear error
when the command is not installed or fails.
"""

from __future__ import annotations

import shutil
import subprocess

DEFAULT_TIMEOUT_SECONDS = 120.0


class RabbitmqctlError(RuntimeError):
    """``rabbitmqctl`` is missing, timed out or exited non-zero (with what it printed)."""


def rabbitmqctl(
    *args: str, timeout: float = DEFAULT_TIMEOUT_SECONDS, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run ``rabbitmqctl <args>`` and return it (text output captured).

    With ``check=False`` a non-zero exit is returned rather than raised (e.g. deleting a vhost
    that may already be gone); a missing command or a timeout always raises.
    """
    if shutil.which("rabbitmqctl") is None:
        raise RabbitmqctlError(
            "rabbitmqctl is not on PATH: install rabbitmq-server (scripts/setup.sh does) and run "
            "as root or as a user with RabbitMQ's Erlang cookie"
        )
    try:
        done = subprocess.run(
            ["rabbitmqctl", *args], capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired as exc:
        raise RabbitmqctlError(
            f"rabbitmqctl {' '.join(args)} did not finish in {timeout:.0f} s"
        ) from exc
    if check and done.returncode != 0:
        output = (done.stderr or done.stdout).strip()[-2000:]
        raise RabbitmqctlError(f"rabbitmqctl {' '.join(args)} exited {done.returncode}: {output}")
    return done
