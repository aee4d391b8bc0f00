"""Running blocking work (network, files) off the UI thread, reporting back with signals.

A ``Worker`` is a ``QRunnable`` with ``started``/``returned``/``errored``/``progress``/
``finished`` signals, as in superqt's ``_qthreading.py``. Its signals object is created on
the UI thread, so every slot connected to it runs on the UI thread, the only one that may
touch widgets. ``errored`` carries a readable sentence (see ``errors.describe``), never a
traceback. A ``Runner`` owns the thread pool, keeps running workers alive, and lets the
window cancel and wait for them when it closes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from PyQt5.QtCore import QObject, QRunnable, QThreadPool, pyqtSignal

from requestor_gui.errors import Cancelled, describe

log = logging.getLogger(__name__)


class WorkerSignals(QObject):
    started = pyqtSignal()
    returned = pyqtSignal(object)
    errored = pyqtSignal(str)  # a readable message
    progress = pyqtSignal(object)
    finished = pyqtSignal()


class Worker(QRunnable):
    """Runs ``fn(*args, **kwargs)`` on a pool thread.

    With ``report_progress``, ``fn`` also gets ``progress=``, a callable that emits the
    ``progress`` signal and raises ``Cancelled`` once ``cancel()`` was called, so a long
    transfer stops at its next chunk.
    """

    def __init__(
        self, fn: Callable[..., Any], *args: Any, report_progress: bool = False, **kwargs: Any
    ) -> None:
        super().__init__()
        self.signals = WorkerSignals()
        self._fn, self._args, self._kwargs = fn, args, kwargs
        self._cancel = threading.Event()
        if report_progress:
            self._kwargs["progress"] = self.report

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def report(self, value: object) -> None:
        if self._cancel.is_set():
            raise Cancelled()
        self.signals.progress.emit(value)

    def run(self) -> None:
        self.signals.started.emit()
        try:
            result = self._fn(*self._args, **self._kwargs)
        except Cancelled:
            log.info("%s cancelled", getattr(self._fn, "__name__", "work"))
        except Exception as exc:
            self.signals.errored.emit(describe(exc))
        else:
            if not self._cancel.is_set():
                self.signals.returned.emit(result)
        finally:
            self.signals.finished.emit()


class Runner(QObject):
    """Starts workers on its own thread pool and tracks them until they finish."""

    def __init__(self, parent: QObject | None = None, *, threads: int = 4) -> None:
        super().__init__(parent)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(threads)
        self._active: dict[WorkerSignals, Worker] = {}

    def start(
        self,
        fn: Callable[..., Any],
        *args: Any,
        on_returned: Callable[[Any], None] | None = None,
        on_errored: Callable[[str], None] | None = None,
        on_progress: Callable[[Any], None] | None = None,
        on_finished: Callable[[], None] | None = None,
        **kwargs: Any,
    ) -> Worker:
        """Run ``fn(*args, **kwargs)`` in the pool; callbacks run on the UI thread."""
        worker = Worker(fn, *args, report_progress=on_progress is not None, **kwargs)
        signals = worker.signals
        if on_returned is not None:
            signals.returned.connect(on_returned)
        if on_errored is not None:
            signals.errored.connect(on_errored)
        if on_progress is not None:
            signals.progress.connect(on_progress)
        if on_finished is not None:
            signals.finished.connect(on_finished)
        # A bound method, not a lambda holding the worker: no cycle through C++ to leak.
        signals.finished.connect(self._forget)
        self._active[signals] = worker
        self._pool.start(worker)
        return worker

    def _forget(self) -> None:
        sender = self.sender()
        if isinstance(sender, WorkerSignals):
            self._active.pop(sender, None)

    @property
    def busy(self) -> int:
        return len(self._active)

    def cancel_all(self) -> None:
        for worker in list(self._active.values()):
            worker.cancel()

    def wait(self, msecs: int = 10_000) -> bool:
        """Block until every worker finished (True) or ``msecs`` passed (False)."""
        return bool(self._pool.waitForDone(msecs))
