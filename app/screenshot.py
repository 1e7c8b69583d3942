"""Screenshots: the study views as PNG, written atomically, with no patient identifiers on them.

The views show orientation letters, slice number, window, scale bar and colour bars, never the patient's
name or ID, so a grab of them is safe to share.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QApplication, QWidget

from app.settings import atomic_write_bytes_from
from viewer.model.document import Document


def save_widget_png(widget: QWidget, path: str | Path) -> None:
    """Grab ``widget`` (with its children) and write it to ``path`` as PNG, atomically."""
    atomic_write_bytes_from(Path(path), lambda tmp: widget.grab().save(str(tmp), "PNG"))


def render_study_png(doc: Document, path: str | Path, layout: str = "mpr", size: tuple[int, int] = (1024, 1024),
                     slice_number: int | None = None) -> None:
    """Render ``doc`` offscreen in ``layout`` at ``size`` (w, h) and save it.

    ``slice_number`` is 1-based, as shown in the views, along the primary (axial or only) view.
    Raises ValueError when it is out of range.
    """
    import viewer.views  # noqa: F401  (pyqtgraph configuration)
    from viewer.views.study_view import StudyView

    app = QApplication.instance() or QApplication(["lucent"])
    view = StudyView(doc, layout=layout)
    try:
        if slice_number is not None:
            n = view.primary.mapping.n_slices
            if not 1 <= slice_number <= n:
                raise ValueError(f"--slice must be between 1 and {n}")
            view.primary.go_to_slice(slice_number - 1)
        view.resize(*size)
        view.show()
        app.processEvents()
        view.reset_zoom()
        app.processEvents()
        save_widget_png(view, path)
    finally:
        view.detach()
        view.close()
        view.deleteLater()
