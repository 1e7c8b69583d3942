"""Screenshots: the study views as PNG, written atomically, with no patient identifiers on them.

The views show orientation letters, slice number, window, scale bar and colour bars, never the patient's
name or ID, so a grab of them is safe to share. The interactive 3D view draws with OpenGL into a native window,
which ``QWidget.render`` cannot read (it comes out black): its frame is rendered by VTK and painted in.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QPoint, QPointF, QRectF
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPixmap
from PySide6.QtWidgets import QApplication, QWidget

from app.settings import atomic_write_bytes_from
from viewer.model.document import Document


def save_widget_png(widget: QWidget, path: str | Path, doc: Document | None = None, scale: float = 1.0,
                    include_patient: bool = False) -> None:
    """Write ``widget`` (with children) to ``path`` as PNG, atomically; with ``doc``, a legend footer."""
    image = compose_screenshot(widget, doc, scale, include_patient)
    atomic_write_bytes_from(Path(path), lambda tmp: image.save(str(tmp), "PNG"))


def legend_lines(doc: Document, include_patient: bool = False) -> list[str]:
    """Footer text: the visible layers with their legends and provenance; patient facts only if asked."""
    lines = []
    for layer in reversed(list(doc.layers)):
        if not layer.visible:
            continue
        extra = [t for t in (getattr(layer, "legend", ""), layer.provenance) if t]
        lines.append(f"■ {layer.name}" + (f" — {'; '.join(extra)}" if extra else ""))
    if include_patient:
        md = doc.base.metadata
        facts = [f"{label}: {md[key]}" for key, label in (("patient_name", "Patient"), ("patient_id", "ID"),
                 ("patient_birth_date", "Born"), ("study_date", "Study date")) if md.get(key)]
        if facts:
            lines.append("  ".join(facts))
    lines.append("Lucent — research software, not for clinical use.")
    return lines


def compose_screenshot(widget: QWidget, doc: Document | None = None, scale: float = 1.0,
                       include_patient: bool = False) -> QImage:
    """Render ``widget`` at ``scale`` (1×, 2×…) and, with ``doc``, append a legend footer below it."""
    size = widget.size()
    w, h = int(size.width() * scale), int(size.height() * scale)
    pixmap = QPixmap(w, h)
    pixmap.setDevicePixelRatio(scale)
    pixmap.fill(QColor("black"))
    widget.render(pixmap)
    _paint_gl_views(widget, pixmap)
    shot = pixmap.toImage()
    if doc is None:
        return shot
    lines = legend_lines(doc, include_patient)
    font = QFont()
    font.setPixelSize(int(13 * scale))
    line_h = int(18 * scale)
    out = QImage(w, h + line_h * len(lines) + int(8 * scale), QImage.Format.Format_RGB32)
    out.fill(QColor(20, 20, 20))
    p = QPainter(out)
    p.drawImage(0, 0, shot)
    p.setFont(font)
    p.setPen(QColor(230, 230, 230))
    for n, line in enumerate(lines):
        p.drawText(int(8 * scale), h + int(4 * scale) + (n + 1) * line_h - int(5 * scale), line)
    p.end()
    return out


def _paint_gl_views(widget: QWidget, pixmap: QPixmap) -> None:
    """Paint the frames of the interactive 3D views inside ``widget`` over their (black) place in ``pixmap``."""
    from viewer.views.view3d import View3D  # no VTK import: only views that exist are asked for frames

    views = [widget] if isinstance(widget, View3D) else widget.findChildren(View3D)
    painter: QPainter | None = None
    for view in views:
        target = view.frame_widget
        if not (view.interactive and view.isVisible() and target is not None and target.isVisible()):
            continue
        try:
            frame = view.render_to_array()
        except RuntimeError:  # closed meanwhile: leave its place black
            continue
        h, w = frame.shape[:2]
        image = QImage(frame.data, w, h, 3 * w, QImage.Format.Format_RGB888)
        painter = painter or QPainter(pixmap)
        painter.drawImage(QRectF(QPointF(target.mapTo(widget, QPoint(0, 0))), target.size().toSizeF()), image)
    if painter is not None:
        painter.end()


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
        view.ensure_3d()
        app.processEvents()
        view.reset_zoom()
        app.processEvents()
        save_widget_png(view, path, doc)
    finally:
        view.detach()
        view.close()
        view.deleteLater()
