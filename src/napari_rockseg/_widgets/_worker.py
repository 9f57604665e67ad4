"""Thread and progress glue shared by the dock widgets.

Engine generators run in napari thread workers; their Progress events drive
a progress bar and a status line; every error becomes one notification in
plain words, and the panel is usable again afterwards.
"""

from __future__ import annotations

from magicgui.widgets import Container, Label, ProgressBar, PushButton
from qtpy.QtWidgets import QSizePolicy

from ..engine.errors import RockSegError


class Failure:
    """What a guarded job returns instead of raising: superqt drops a RuntimeError raised in a
    generator without emitting ``finished`` (the panel stayed locked), and napari shows every
    other exception as a second toast prefixed with its type."""

    def __init__(self, exc: BaseException):
        self.exc = exc


def plain_message(exc: BaseException, what: str = "the task") -> str:
    """One line for the user: engine errors as they are (they say what to do), others
    without the Python type name."""
    if isinstance(exc, RockSegError):
        return str(exc)
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, MemoryError) or "out of memory" in text.lower():
        return (
            f"{what} needs more memory than is free. Check the image's pixel size (an image far "
            "coarser or finer than the model's is resampled a lot) or use a smaller tile size."
        )
    return f"{what} failed: {text or type(exc).__name__}"


def notify_error(exc: BaseException | str, what: str = "the task") -> str:
    from napari.utils.notifications import show_error

    msg = exc if isinstance(exc, str) else plain_message(exc, what)
    show_error(msg)
    return msg


def notify_info(msg: str) -> None:
    from napari.utils.notifications import show_info

    show_info(msg)


def notify_warning(msg: str) -> None:
    from napari.utils.notifications import show_warning

    show_warning(msg)


def save_to(file_edit, suffix: str, what: str, write) -> str | None:
    """Write with ``write(path)`` to the file chosen in ``file_edit`` (``suffix``
    added when missing); errors become notifications."""
    path = str(file_edit.value)
    if not path or path == ".":
        notify_error(f"choose a file name for the {what}")
        return None
    if not path.endswith(suffix):
        path += suffix
    try:
        write(path)
    except Exception as exc:
        notify_error(exc, f"saving the {what}")
        return None
    notify_info(f"saved {path}")
    return path


def fit_table(table) -> None:
    """Columns sized to their contents, no row numbers: tables that read at a glance."""
    from qtpy.QtWidgets import QHeaderView, QStyledItemDelegate

    # magicgui's delegate shows every number-like text with 4 decimals (0.924 as 0.9240, small
    # areas as 1.600e-02): cells show the text the widget formatted
    table.native.setItemDelegate(QStyledItemDelegate(table.native))
    header = table.native.horizontalHeader()
    header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    table.native.verticalHeader().setVisible(False)


def show_table(table, value: dict, index=None) -> None:
    """Fill a magicgui Table with text shown exactly as given (magicgui turns numeric-looking
    strings into floats and shows 0.924 as 0.9240)."""
    columns = [k for k in value if k != "index"]
    rows = list(zip(*(value[k] for k in columns)))
    if index is not None:
        table.value = {"data": [list(r) for r in rows], "index": index, "columns": columns}
    else:
        table.value = {k: value[k] for k in columns}
    for r, row in enumerate(rows):
        for c, text in enumerate(row):
            item = table.native.item(r, c)
            if item is not None:
                item.setText(str(text))


def format_eta(seconds) -> str:
    if seconds is None:
        return ""
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 60}:{seconds % 60:02d} left" if seconds >= 60 else f"{seconds} s left"


def wrap_label(label: Label) -> Label:
    """Long notes wrap at the dock's width instead of widening it."""
    label.native.setWordWrap(True)
    label.native.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
    return label


class RunPanel(Container):
    """Run / Cancel buttons, a progress bar and a status line for one kind of job.

    ``start(gen_factory, on_return, on_event, on_cancel)`` runs the engine generator in a
    thread worker; while it runs the Run button is disabled and Cancel enabled. ``fraction``
    (a function of each event, default ``ev.fraction``) lets a caller map many stages onto
    one bar. ``last_error`` holds the message of the last failure (None after a success).
    """

    def __init__(self, run_text: str, what: str, tooltip: str = ""):
        self.what = what
        self.run_button = PushButton(text=run_text, tooltip=tooltip)
        self.cancel_button = PushButton(
            text="Cancel",
            enabled=False,
            tooltip="stop after the current step; nothing is half written",
        )
        self.progress = ProgressBar(
            value=0, min=0, max=100, label="progress", tooltip="progress of the whole job"
        )
        self.status = wrap_label(Label(value="", tooltip="what the job is doing, and what it did"))
        buttons = Container(
            widgets=[self.run_button, self.cancel_button], layout="horizontal", labels=False
        )
        super().__init__(widgets=[buttons, self.progress, self.status], labels=False)
        self.worker = None
        self.cancelled = False
        self.last_error: str | None = None
        self.cancel_button.changed.connect(self.cancel)
        self._gen = None

    @property
    def running(self) -> bool:
        return self.worker is not None

    def _guarded(self, gen_factory):
        """The job as a generator that returns a :class:`Failure` instead of raising."""
        try:
            gen = gen_factory()
            self._gen = gen
            return (yield from gen)
        except Exception as exc:  # every failure reaches the user once, through `returned`
            return Failure(exc)

    def start(self, gen_factory, on_return, on_event=None, on_cancel=None, fraction=None):
        from napari.qt.threading import create_worker

        self.cancelled = False
        self.last_error = None
        worker = create_worker(self._guarded, gen_factory, _start_thread=False)

        def yielded(ev):
            frac = fraction(ev) if fraction is not None else ev.fraction
            self.progress.value = int(round(100 * min(1.0, max(0.0, frac))))
            if on_event is not None:
                on_event(ev)
            eta = getattr(ev, "overall_eta_s", ev.eta_s)
            self.status.value = " ".join(x for x in (ev.message or ev.stage, format_eta(eta)) if x)

        def returned(result):
            if isinstance(result, Failure):
                self.progress.value = 0
                self.last_error = notify_error(result.exc, self.what)
                self.status.value = f"failed: {self.last_error}"
            elif not self.cancelled:
                self.progress.value = 100
                self.status.value = "done"
                on_return(result)

        def finished():
            self.worker = None
            self.run_button.enabled = True
            self.cancel_button.enabled = False
            gen, self._gen = self._gen, None
            if self.cancelled:
                if gen is not None:
                    gen.close()  # run the job's `finally` blocks now (they restore model state)
                self.progress.value = 0
                self.status.value = "cancelled"
                if on_cancel is not None:
                    on_cancel()

        worker.yielded.connect(yielded)
        worker.returned.connect(returned)
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
