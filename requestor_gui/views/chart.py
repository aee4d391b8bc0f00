"""Live chart of training loss and accuracy per round (pyqtgraph)."""

from __future__ import annotations

import pyqtgraph as pg
from PyQt5.QtCore import Qt
from PyQt5.QtWidgets import QHBoxLayout, QWidget

from daig.contract.http import RoundOut
from requestor_gui.models import column_title, metric_names, round_metrics

pg.setConfigOptions(antialias=True, background="w", foreground="#3a4756")

# Per panel: the providers' training metric, Keras's validation split, the held-out files.
COLOURS = {
    "loss": {"": "#2f6fde", "val_": "#e67e22", "held_out_": "#c0392b"},
    "accuracy": {"": "#1e8e3e", "val_": "#8e44ad", "held_out_": "#b7950b"},
}
# Loss falls and accuracy rises: each legend goes where its curves usually are not.
LEGEND_OFFSETS = {"loss": (-10, 10), "accuracy": (-10, -30)}


def series(rounds: list[RoundOut], name: str) -> tuple[list[int], list[float]]:
    """(round numbers, values) of one metric, skipping rounds that did not report it."""
    xs, ys = [], []
    for r in rounds:
        value = round_metrics(r).get(name)
        if r.closed_at and value is not None:
            xs.append(r.number)
            ys.append(float(value))
    return xs, ys


class MetricsChart(QWidget):
    """Two plots: every loss metric on the left, every accuracy metric on the right."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.plots = {key: self._plot(key) for key in ("loss", "accuracy")}
        for plot in self.plots.values():
            layout.addWidget(plot)
        self.curves: dict[str, pg.PlotDataItem] = {}
        self._empty = {key: self._placeholder(plot) for key, plot in self.plots.items()}

    def _plot(self, key: str) -> pg.PlotWidget:
        plot = pg.PlotWidget()
        plot.setTitle(key.capitalize(), size="11pt")
        plot.setLabel("bottom", "round")
        plot.showGrid(x=True, y=True, alpha=0.2)
        plot.addLegend(
            offset=LEGEND_OFFSETS[key], brush=pg.mkBrush(255, 255, 255, 210), pen="#d5dbe3"
        )
        plot.setMouseEnabled(x=False, y=False)
        plot.hideButtons()
        plot.setMinimumHeight(220)
        return plot

    @staticmethod
    def _placeholder(plot: pg.PlotWidget) -> pg.TextItem:
        text = pg.TextItem("No round has closed yet", color="#8a94a3", anchor=(0.5, 0.5))
        plot.addItem(text)
        text.setPos(0.5, 0.5)
        return text

    def set_rounds(self, rounds: list[RoundOut]) -> None:
        names = metric_names(rounds)
        for name in names:
            xs, ys = series(rounds, name)
            curve = self.curves.get(name) or self._curve(name)
            curve.setData(xs, ys)
        for name in set(self.curves) - set(names):
            self.curves.pop(name).setData([], [])
        for key, placeholder in self._empty.items():
            placeholder.setVisible(not any(self._panel(n) == key for n in names))

    def _curve(self, name: str) -> pg.PlotDataItem:
        panel = self._panel(name)
        prefix = next((p for p in ("held_out_", "val_") if name.startswith(p)), "")
        colour = COLOURS[panel].get(prefix, "#7f8c8d")
        style = {"": Qt.PenStyle.SolidLine, "val_": Qt.PenStyle.DashLine}
        pen = pg.mkPen(colour, width=2, style=style.get(prefix, Qt.PenStyle.DotLine))
        curve = self.plots[panel].plot(
            [],
            [],
            pen=pen,
            symbol="o",
            symbolSize=6,
            symbolBrush=colour,
            name=column_title(name).replace("\n", " "),
        )
        self.curves[name] = curve
        return curve

    @staticmethod
    def _panel(name: str) -> str:
        return "loss" if name.endswith("loss") else "accuracy"

    def point_count(self, name: str) -> int:
        """Points drawn for ``name`` (for tests)."""
        curve = self.curves.get(name)
        if curve is None or curve.xData is None:
            return 0
        return len(curve.xData)
