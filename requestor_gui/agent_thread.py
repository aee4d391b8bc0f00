"""The provider agent on its own ``QThread``: ``run()`` blocks there, never on the UI thread.

Training itself runs in the agent's child process; this thread only carries the agent's
task loop (broker, claims, uploads). ``request_stop()`` sets the agent's stop event, which
gives a running task back at once; the thread then ends by itself.
"""

from __future__ import annotations

import logging

from PyQt5.QtCore import QObject, QThread, pyqtSignal

from provider_agent.agent import ProviderAgent
from provider_agent.config import AgentConfig
from provider_agent.status import AgentStatus
from requestor_gui.errors import describe

log = logging.getLogger(__name__)


class AgentThread(QThread):
    """Runs one ``ProviderAgent`` until it is stopped; ``failed`` carries a readable reason."""

    failed = pyqtSignal(str)

    def __init__(self, config: AgentConfig, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.agent = ProviderAgent(config)

    @property
    def status(self) -> AgentStatus:
        """What the agent is doing (read by the UI thread's timer; fields are plain values)."""
        return self.agent.status

    @property
    def stopping(self) -> bool:
        return self.agent.stop.is_set()

    def request_stop(self) -> None:
        self.agent.stop.set()

    def run(self) -> None:
        try:
            self.agent.run()
        except Exception as exc:  # any failure becomes a message; the thread ends cleanly
            log.warning("provider agent stopped: %s", exc)
            self.failed.emit(describe(exc))
        finally:
            self.agent.status.state = "stopped"
