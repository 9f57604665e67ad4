"""Thread and progress glue shared by the dock widgets.

Engine generators run in napari thread workers; their Progress events drive
a progress bar and a status line; errors become napari notifications.
"""

from __future__ import annotations

from magicgui.widgets import Container, Label, ProgressBar, PushButton
from qtpy.QtWidgets import QSizePolicy

from ..engine.errors import RockSegError


def notify_error(exc: BaseException) -> None:
    from napari.utils.notifications import show_error

    msg = str(exc) if isinstance(exc, RockSegError) else f"{type(exc).__name__}: {exc}"
    show_error(msg)


def notify_info(msg: str) -> None:
    from napari.utils.notifications import show_info

    show_info(msg)


def save_to(file_edit, suffix: str, what: str, write) -> str | None:
    """Write with ``write(path)`` to the file chosen in ``file_edit`` (``suffix``
    added when missing); errors become notifications."""
    path = str(file_edit.value)
    if not path or path == ".":
        notify_error(ValueError(f"choose a file name for the {what}"))
        return None
    if not path.endswith(suffix):
        path += suffix
    try:
        write(path)
    except Exception as exc:
        notify_error(exc)
        return None
    notify_info(f"saved {path}")
    return path


def fit_table(table) -> None:
    """Columns sized to their contents, no row numbers: tables that read at a glance."""
    from qtpy.QtWidgets import QHeaderView

    header = table.native.horizontalHeader()
    header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    table.native.verticalHeader().setVisible(False)


def format_eta(seconds) -> str:
    if seconds is None:
        return ""
    seconds = int(round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d} left" if seconds >= 60 else f"{seconds} s left"


class RunPanel(Container):
    """Run / Cancel buttons, a progress bar and a status line for one kind of job.

    ``start(gen_factory, on_return, on_event)`` runs the engine generator in a
    thread worker; while it runs the Run button is disabled and Cancel enabled.
    """

    def __init__(self, run_text: str):
        self.run_button = PushButton(text=run_text)
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.progress = ProgressBar(value=0, min=0, max=100, label="progress")
        self.status = Label(value="")
        # long notes wrap at the dock's width instead of widening it
        self.status.native.setWordWrap(True)
        self.status.native.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        buttons = Container(widgets=[self.run_button, self.cancel_button], layout="horizontal", labels=False)
        super().__init__(widgets=[buttons, self.progress, self.status], labels=False)
        self.worker = None
        self.cancelled = False
        self.cancel_button.changed.connect(self.cancel)
        self._on_cancel = None

    @property
    def running(self) -> bool:
        return self.worker is not None

    def start(self, gen_factory, on_return, on_event=None, on_cancel=None):
        from napari.qt.threading import create_worker

        self.cancelled = False
        self._on_cancel = on_cancel
        worker = create_worker(gen_factory, _start_thread=False)

        def yielded(ev):
            self.progress.value = int(100 * ev.fraction)
            self.status.value = " ".join(x for x in (ev.message or ev.stage, format_eta(ev.eta_s)) if x)
            if on_event is not None:
                on_event(ev)

        def returned(result):
            if not self.cancelled:
                self.progress.value = 100
                self.status.value = "done"
                on_return(result)

        def errored(exc):
            self.status.value = "failed"
            notify_error(exc)

        def finished():
            self.worker = None
            self.run_button.enabled = True
            self.cancel_button.enabled = False
            if self.cancelled:
                self.status.value = "cancelled"
                if self._on_cancel is not None:
                    self._on_cancel()

        worker.yielded.connect(yielded)
        worker.returned.connect(returned)
        worker.errored.connect(errored)
        worker.finished.connect(finished)
        self.worker = worker
        self.run_button.enabled = False
        self.cancel_button.enabled = True
        self.progress.value = 0
        self.status.value = "starting"
        worker.start()
        return worker

    def cancel(self, *_):
        if self.worker is not None:
            self.cancelled = True
            self.status.value = "cancelling"
            self.worker.quit()
