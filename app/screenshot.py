"""Screenshots: the study views as PNG, written atomically, with no patient identifiers on them.

The views show orientation letters, slice number, window, scale bar and colour bars, never the patient's
name or ID, so a grab of them is safe to share. Below the views a legend footer lists what is drawn — every
layer the exported views draw (compare panes included, whatever the layer list hides), each with its colours,
scale, threshold and provenance — word-wrapped inside the image width, in a font that has the legends' glyphs.

Resolution: "native" renders so that one exported pixel covers at most one image pixel of the views (a
2500 px radiograph exports at 2500 px, not at the window's size), "2x" at twice the screen size, "1x" as on
screen. The crosshair and the annotations can be left out.

The interactive 3D view draws with OpenGL into a native window, which ``QWidget.render`` cannot read (it comes
out black): its frame is rendered by VTK and painted in.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PySide6.QtCore import QPoint, QPointF, QRectF
from PySide6.QtGui import QColor, QFont, QFontMetrics, QImage, QPainter, QPixmap, QTextLayout, QTextOption
from PySide6.QtWidgets import QApplication, QWidget

from app.settings import atomic_write_bytes_from
from viewer.model import colormaps
from viewer.model.document import Document
from viewer.model.layers import HeatmapLayer, LabelsLayer, Layer
from viewer.views.fonts import legend_font

RESOLUTIONS = ("native", "2x", "1x")
MAX_SIDE = 8192  # px: the largest exported image side ("native" is capped to it)
FOOTER_PX = 13  # legend text height at 1× (pixels)


@dataclass(frozen=True)
class ExportOptions:
    """What an exported screenshot shows.

    Attributes:
        resolution: "native" (one exported pixel per image pixel of the sharpest view), "2x" or "1x" (screen).
        crosshair: draw the crosshair lines.
        annotations: draw rulers, ROIs, arrows and texts.
        include_patient: add the patient's name, ID and birth date to the legend.
    """

    resolution: str = "native"
    crosshair: bool = False
    annotations: bool = True
    include_patient: bool = False

    def __post_init__(self) -> None:
        if self.resolution not in RESOLUTIONS:
            raise ValueError(f"resolution must be one of {RESOLUTIONS}, not {self.resolution!r}")


SCREEN = ExportOptions(resolution="1x", crosshair=True)  # what the screen shows (clipboard, --screenshot)


def save_widget_png(widget: QWidget, path: str | Path, doc: Document | None = None,
                    options: ExportOptions = SCREEN) -> None:
    """Write ``widget`` (with children) to ``path`` as PNG, atomically; with ``doc``, a legend footer."""
    image = compose_screenshot(widget, doc, options)
    atomic_write_bytes_from(Path(path), lambda tmp: image.save(str(tmp), "PNG"))


# ---- what is drawn ---------------------------------------------------------------------------------------
def slice_views(widget: QWidget) -> list:
    """The slice views inside ``widget`` (or ``widget`` itself), in layout order."""
    from viewer.views.slice_view import SliceView

    if isinstance(widget, SliceView):
        return [widget]
    return [v for v in getattr(widget, "views", {}).values() if isinstance(v, SliceView)] or \
        widget.findChildren(SliceView)


def drawn_layers(widget: QWidget, doc: Document) -> list[tuple[str, Layer]]:
    """(where, layer) for every layer the views in ``widget`` draw, top first: where = "" or "pane 2" (compare)."""
    views = slice_views(widget)
    compare = any(v.only_layers is not None for v in views)
    out: list[tuple[str, Layer]] = []
    seen: set[int] = set()
    for n, view in enumerate(views):
        for layer in reversed(view.drawn_layers()):
            if compare and layer is not doc.base_layer:
                out.append((f"pane {n + 1}", layer))
            elif id(layer) not in seen and not (compare and layer is doc.base_layer):
                out.append(("", layer))
            seen.add(id(layer))
    if compare and id(doc.base_layer) in seen:  # the film under every pane: once, last
        out.append(("", doc.base_layer))
    if not views:  # a 3D view alone: the document's visible layers
        out = [("", la) for la in reversed(list(doc.layers)) if la.visible]
    return out


def layer_line(layer: Layer, where: str = "") -> str:
    """One legend line: "[pane n: ]name — legend; scale; provenance"."""
    extra = [t for t in (getattr(layer, "legend", ""), layer.provenance) if t]
    if isinstance(layer, HeatmapLayer):
        lo, hi = layer.value_range
        scale = f"{lo:.3g}–{hi:.3g}" + (f" {layer.units}" if layer.units else "")
        if layer.threshold is not None:
            scale += f", shown ≥ {layer.threshold:.3g}"
        extra.insert(1 if extra and extra[0] == getattr(layer, "legend", "") else 0, scale)
    elif isinstance(layer, LabelsLayer) and layer.label_names:
        extra.insert(0, ", ".join(f"{v}: {n}" for v, n in sorted(layer.label_names.items())))
    head = f"{where}: {layer.name}" if where else layer.name
    return head + (f" — {'; '.join(extra)}" if extra else "")


def patient_line(doc: Document) -> str:
    md = doc.base.metadata
    facts = [f"{label}: {md[key]}" for key, label in (("patient_name", "Patient"), ("patient_id", "ID"),
             ("patient_birth_date", "Born"), ("study_date", "Study date")) if md.get(key)]
    return "  ".join(facts)


DISCLAIMER = "Lucent — research software, not for clinical use."


def legend_lines(doc: Document, include_patient: bool = False, widget: QWidget | None = None) -> list[str]:
    """Footer text: the drawn layers (those of ``widget``'s views, else the visible ones) with their legends,
    scales and provenance; patient facts only if asked; the disclaimer last."""
    layers = (drawn_layers(widget, doc) if widget is not None
              else [("", la) for la in reversed(list(doc.layers)) if la.visible])
    lines = [layer_line(layer, where) for where, layer in layers]
    if include_patient and patient_line(doc):
        lines.append(patient_line(doc))
    lines.append(DISCLAIMER)
    return lines


# ---- composing ---------------------------------------------------------------------------------------------
def export_scale(widget: QWidget, resolution: str) -> float:
    """Device-pixel ratio to render ``widget`` at for ``resolution`` (see :class:`ExportOptions`)."""
    if resolution == "2x":
        scale = 2.0
    elif resolution == "1x":
        scale = 1.0
    else:  # image pixels per screen pixel in the sharpest view
        scale = 1.0
        for view in slice_views(widget):
            mm_per_screen_px = float(view.viewbox.viewPixelSize()[0])
            mm_per_image_px = float(view.mapping.pixel_size[0])
            if np.isfinite(mm_per_screen_px) and mm_per_image_px > 0:
                scale = max(scale, mm_per_screen_px / mm_per_image_px)
    side = max(widget.width(), widget.height(), 1)
    return float(min(scale, MAX_SIDE / side))


@contextmanager
def decorations(widget: QWidget, crosshair: bool, annotations: bool) -> Iterator[None]:
    """Within the block, the views in ``widget`` draw the crosshair and annotations only as asked."""
    items = []
    for view in slice_views(widget):
        if not crosshair:
            items += [view.h_line, view.v_line]
        if not annotations:
            items += list(view.annotation_items.items)
    shown = [it for it in items if it.isVisible()]
    for it in shown:
        it.setVisible(False)
    try:
        yield
    finally:
        for it in shown:
            it.setVisible(True)


def wrap(text: str, font: QFont, width: float) -> list[str]:
    """``text`` broken into lines no wider than ``width`` pixels (at word boundaries, else anywhere)."""
    layout = QTextLayout(text, font)
    option = QTextOption()
    option.setWrapMode(QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere)
    layout.setTextOption(option)
    layout.beginLayout()
    lines = []
    while True:
        line = layout.createLine()
        if not line.isValid():
            break
        line.setLineWidth(width)
        lines.append(text[line.textStart(): line.textStart() + line.textLength()].rstrip())
    layout.endLayout()
    return lines or [""]


def _swatch(layer: Layer | None) -> QImage | None:
    """A small colour sample for a legend line: the colour map's ramp, or the label colours."""
    if isinstance(layer, HeatmapLayer):
        ramp = colormaps.lut(layer.colormap)[None, :, :].repeat(8, 0)
    elif isinstance(layer, LabelsLayer):
        values = sorted(layer.label_names) or [1]
        ramp = colormaps.label_lut()[np.repeat(values, max(1, 64 // len(values)))][None].repeat(8, 0)
    else:
        return None
    ramp = np.ascontiguousarray(ramp)
    h, w = ramp.shape[:2]
    return QImage(ramp.data, w, h, 4 * w, QImage.Format.Format_RGBA8888).copy()


def compose_screenshot(widget: QWidget, doc: Document | None = None, options: ExportOptions = SCREEN) -> QImage:
    """Render ``widget`` as ``options`` say and, with ``doc``, append the legend footer below it."""
    scale = export_scale(widget, options.resolution)
    size = widget.size()
    w, h = round(size.width() * scale), round(size.height() * scale)
    pixmap = QPixmap(w, h)
    pixmap.setDevicePixelRatio(scale)
    pixmap.fill(QColor("black"))
    _fresh_3d_frames(widget)
    with decorations(widget, options.crosshair, options.annotations):
        widget.render(pixmap)
    _paint_gl_views(widget, pixmap)
    shot = pixmap.toImage()
    shot.setDevicePixelRatio(1.0)
    if doc is None:
        return shot
    entries: list[tuple[Layer | None, str]] = [(layer, layer_line(layer, where))
                                               for where, layer in drawn_layers(widget, doc)]
    if options.include_patient and patient_line(doc):
        entries.append((None, patient_line(doc)))
    entries.append((None, DISCLAIMER))
    return _with_footer(shot, entries, scale)


def _with_footer(shot: QImage, entries: list[tuple[Layer | None, str]], scale: float) -> QImage:
    """``shot`` with the legend ``entries`` (swatch source, text) wrapped below it, all inside its width."""
    w, h = shot.width(), shot.height()
    font = legend_font(round(FOOTER_PX * scale))
    fm = QFontMetrics(font)
    margin, line_h = round(8 * scale), fm.lineSpacing()
    swatch_w, gap = round(40 * scale), round(6 * scale)
    text_w = max(20, w - 2 * margin - swatch_w - gap)
    wrapped = [(layer, wrap(text, font, text_w)) for layer, text in entries]
    n_lines = sum(len(lines) for _, lines in wrapped)
    out = QImage(w, h + n_lines * line_h + 2 * margin, QImage.Format.Format_RGB32)
    out.fill(QColor(20, 20, 20))
    p = QPainter(out)
    p.drawImage(0, 0, shot)
    p.setFont(font)
    p.setPen(QColor(230, 230, 230))
    y = h + margin
    for layer, lines in wrapped:
        swatch = _swatch(layer)
        if swatch is not None:
            p.drawImage(QRectF(margin, y + (line_h - fm.ascent()) / 2, swatch_w, fm.ascent() * 0.8), swatch)
        for line in lines:
            p.drawText(QPointF(margin + swatch_w + gap, y + fm.ascent()), line)
            y += line_h
    p.end()
    return out


def _views_3d(widget: QWidget) -> list:
    from viewer.views.view3d import View3D  # no VTK import: only views that exist are asked for frames

    return [widget] if isinstance(widget, View3D) else widget.findChildren(View3D)


def _fresh_3d_frames(widget: QWidget) -> None:
    """Have the 3D views that render on their own thread show a full-quality frame of now (waits for them)."""
    for view in _views_3d(widget):
        if view.threaded and view.isVisible():
            try:
                view.render_to_array()
            except (RuntimeError, TimeoutError):  # closed or stuck: its last frame will do
                continue


def _paint_gl_views(widget: QWidget, pixmap: QPixmap) -> None:
    """Paint the frames of the interactive 3D views inside ``widget`` over their (black) place in ``pixmap``."""
    painter: QPainter | None = None
    for view in _views_3d(widget):
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
