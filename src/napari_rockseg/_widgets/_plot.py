"""A small live plot of training loss and validation IoU, embedded in a dock."""

from __future__ import annotations

from magicgui.widgets import Container


class FigureBox(Container):
    """A matplotlib figure inside a magicgui container."""

    def __init__(self, height: float, min_height: int):
        super().__init__(labels=False)
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        self.figure = Figure(figsize=(4, height), dpi=90, tight_layout=True)
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(min_height)
        self.native.layout().addWidget(self.canvas)


class TrainingPlot(FigureBox):
    def __init__(self, class_names=()):
        super().__init__(2.6, 220)
        self.ax_loss = self.figure.add_subplot(121)
        self.ax_iou = self.figure.add_subplot(122)
        self.class_names = list(class_names)
        self.clear()

    def clear(self):
        self.loss: list[tuple[int, float]] = []
        self.iou: list[tuple[int, list[float]]] = []
        self._offset = 0
        self._stage = None
        self._last_step = 0
        self.draw()

    def add(self, ev):
        """Record one Progress event; steps continue across stages."""
        if ev.stage != self._stage:
            self._offset = self._last_step
            self._stage = ev.stage
        x = self._offset + ev.step
        self._last_step = x
        if ev.loss is not None:
            self.loss.append((x, ev.loss))
        if ev.metrics.get("iou"):
            self.iou.append((x, list(ev.metrics["iou"])))
            self.draw()

    def draw(self):
        self.ax_loss.clear()
        self.ax_iou.clear()
        self.ax_loss.set_title("training loss", fontsize=9)
        self.ax_iou.set_title("validation IoU", fontsize=9)
        if self.loss:
            xs, ys = zip(*self.loss)
            self.ax_loss.plot(xs, ys, lw=1)
        if self.iou:
            xs = [x for x, _ in self.iou]
            k = len(self.iou[0][1])
            names = (
                self.class_names if len(self.class_names) == k else [str(i + 1) for i in range(k)]
            )
            for c in range(k):
                self.ax_iou.plot(xs, [v[c] for _, v in self.iou], lw=1, label=names[c])
            self.ax_iou.set_ylim(0, 1)
            self.ax_iou.legend(fontsize=6, loc="lower right")
        for ax in (self.ax_loss, self.ax_iou):
            ax.tick_params(labelsize=7)
            ax.set_xlabel("step", fontsize=7)
        self.canvas.draw_idle()
