"""Live chart of training loss and accuracy per round (pyqtgraph).

Rounds are numbered from 1 here as everywhere people read them (the wire index is 0-based).
The x axis shows whole rounds from 1 to the project's last round. A curve exists only while
its metric has a point: a metric that goes away (another project opened) is removed from its
plot and legend, and a legend with no curve is hidden, so nothing leaks between projects.
"""

from __future__ import annotations

import pyqtgraph as pg
from PyQt5.QtCore import Qt
from PyQt5.QtWidgets import QHBoxLayout, QWidget

from daig.contract.http import RoundOut
from requestor_gui import style
from requestor_gui.models import column_title, metric_names, round_metrics

pg.setConfigOptions(antialias=True)

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
        self._set_round_axis(1)
        self._show_legends()

    def _plot(self, key: str) -> pg.PlotWidget:
        plot = pg.PlotWidget()
        plot.setLabel("bottom", "round")
        plot.showGrid(x=True, y=True, alpha=0.2)
        plot.addLegend(offset=LEGEND_OFFSETS[key])
        plot.setMouseEnabled(x=False, y=False)
        plot.hideButtons()
        plot.setMinimumHeight(180)
        self._colour(plot, key)
        return plot

    def apply_theme(self) -> None:
        """Redraw the plots in the current theme's colours (after the theme changed)."""
        for key, plot in self.plots.items():
            self._colour(plot, key)
        for placeholder in self._empty.values():
            placeholder.setColor(style.current().muted)

    @staticmethod
    def _colour(plot: pg.PlotWidget, key: str) -> None:
        theme = style.current()
        plot.setBackground(theme.plot_back)
        plot.setTitle(key.capitalize(), size="11pt", color=theme.plot_fore)
        for side in ("bottom", "left"):
            axis = plot.getAxis(side)
            axis.setPen(theme.plot_fore)
            axis.setTextPen(theme.plot_fore)
        legend = plot.getPlotItem().legend
        if legend is not None:
            back = pg.mkColor(theme.plot_back)
            back.setAlpha(210)
            legend.setBrush(pg.mkBrush(back))
            legend.setPen(pg.mkPen(theme.border))
            legend.setLabelTextColor(theme.plot_fore)
            for _, name in legend.items:  # the labels already there keep their colour otherwise
                name.setText(name.text, color=theme.plot_fore)

    @staticmethod
    def _placeholder(plot: pg.PlotWidget) -> pg.TextItem:
        text = pg.TextItem(
            "No round has closed yet", color=style.current().muted, anchor=(0.5, 0.5)
        )
        plot.addItem(text)
        text.setPos(1, 0.5)
        return text

    def set_rounds(self, rounds: list[RoundOut], total_rounds: int | None = None) -> None:
        """Draw ``rounds``; the x axis runs from round 1 to ``total_rounds`` (if known)."""
        drawn = []
        for name in metric_names(rounds):
            xs, ys = series(rounds, name)
            if not xs:
                continue  # no point: no curve and no legend entry
            curve = self.curves.get(name) or self._curve(name)
            curve.setData(xs, ys)
            drawn.append(name)
        for name in set(self.curves) - set(drawn):
            curve = self.curves.pop(name)
            # PlotItem.removeItem takes the curve out of the legend too.
            self.plots[self._panel(name)].getPlotItem().removeItem(curve)
        for key, placeholder in self._empty.items():
            placeholder.setVisible(not any(self._panel(n) == key for n in drawn))
        self._set_round_axis(max([total_rounds or 0] + [r.index + 1 for r in rounds]))
        self._show_legends()

    def _set_round_axis(self, last: int) -> None:
        """Whole rounds 1..``last`` on the x axis: integer ticks, at most about ten labels."""
        last = max(last, 1)
        step = max(1, -(-last // 10))
        ticks = [(n, str(n)) for n in range(1, last + 1, step)]
        if ticks[-1][0] != last:
            ticks.append((last, str(last)))
        for plot in self.plots.values():
            plot.getAxis("bottom").setTicks([ticks, []])
            plot.setXRange(1, last, padding=0.04)
        for placeholder in self._empty.values():
            placeholder.setPos((1 + last) / 2, 0.5)

    def _show_legends(self) -> None:
        for plot in self.plots.values():
            legend = plot.getPlotItem().legend
            if legend is not None:
                legend.setVisible(bool(legend.items))

    def legend_count(self) -> int:
        """Entries in both legends (for tests): one per curve drawn."""
        total = 0
        for plot in self.plots.values():
            legend = plot.getPlotItem().legend
            total += len(legend.items) if legend is not None else 0
        return total

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
