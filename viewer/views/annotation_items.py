"""Graphics items that draw the Document's annotations on a slice view (scene units: mm on screen grid)."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF
from PySide6.QtGui import QColor, QPen
from PySide6.QtWidgets import QGraphicsEllipseItem, QGraphicsLineItem

from viewer.model.annotations import (
    Annotation,
    ellipse_pixels,
    ellipse_stats,
    on_slice,
    roi_stats,
    ruler_length_mm,
)

COLOUR = QColor(255, 200, 0)


def _pen() -> QPen:
    pen = QPen(COLOUR)
    pen.setCosmetic(True)
    pen.setWidthF(1.5)
    return pen


def _label(text: str, at: QPointF) -> pg.TextItem:
    item = pg.TextItem(text, color=COLOUR, anchor=(0, 1), fill=pg.mkBrush(0, 0, 0, 140))
    item.setPos(at)
    return item


class AnnotationItems:
    """Keeps the annotation graphics of one SliceView in step with the Document and the slice shown."""

    def __init__(self, view) -> None:  # view: SliceView (not imported to avoid a cycle)
        self.view = view
        self.items: list = []

    def clear(self) -> None:
        for it in self.items:
            self.view.viewbox.removeItem(it)
        self.items = []

    def scene_point(self, xyz: np.ndarray) -> QPointF:
        s, c, r = self.view.mapping.index_to_screen(self.view.document.base.patient_to_index(xyz))
        return self.view.scene_of_screen(c, r)

    def refresh(self) -> None:
        self.clear()
        doc, view = self.view.document, self.view
        for a in doc.annotations:
            if on_slice(a, doc.base, view.mapping, view.slice_index):
                self.items.extend(self.make(a))
        for it in self.items:
            it.setZValue(900)
            view.viewbox.addItem(it, ignoreBounds=True)

    def make(self, a: Annotation) -> list:
        """Graphics items for ``a`` (the label text is computed from the image for ROIs)."""
        pts = [self.scene_point(p) for p in a.points]
        base = self.view.document.base
        units = "mm" if base.spacing_known else "px"
        if a.kind == "text":
            return [_label(a.text or "…", pts[0])]
        if a.kind == "ruler":
            line = QGraphicsLineItem(pts[0].x(), pts[0].y(), pts[1].x(), pts[1].y())
            line.setPen(_pen())
            return [line, _label(f"{ruler_length_mm(a):.1f} {units}", pts[1])]
        if a.kind == "arrow":
            line = QGraphicsLineItem(pts[0].x(), pts[0].y(), pts[1].x(), pts[1].y())
            line.setPen(_pen())
            angle = np.degrees(np.arctan2(pts[0].y() - pts[1].y(), pts[0].x() - pts[1].x()))
            head = pg.ArrowItem(pos=(pts[1].x(), pts[1].y()), angle=angle, headLen=14, tipAngle=35, pen=_pen(),
                                brush=pg.mkBrush(COLOUR))
            items = [line, head]
            if a.text:
                items.append(_label(a.text, pts[0]))
            return items
        rect = QRectF(pts[0], pts[1]).normalized()
        ellipse = QGraphicsEllipseItem(rect)
        ellipse.setPen(_pen())
        st = ellipse_stats(a, base, self.view.mapping)
        area_units = "mm²" if base.spacing_known else "px²"
        text = (f"mean {st.mean:.4g} ± {st.std:.3g}  [{st.minimum:.4g}, {st.maximum:.4g}]\n"
                f"area {st.area_mm2:.4g} {area_units}  n={st.n}")
        for line in self._heatmap_lines(a):
            text += "\n" + line
        return [ellipse, _label(text, QPointF(rect.right(), rect.top()))]

    def _heatmap_lines(self, a: Annotation) -> list[str]:
        """Mean ± std of every visible heatmap under ellipse ``a`` (resampled onto the displayed grid)."""
        view = self.view
        base = view.document.base
        s, box, inside = ellipse_pixels(a, base, view.mapping)
        lines = []
        for li in view.layer_images:
            layer = li.layer
            if not (li.measured and li.drawn):
                continue
            values = li.raw if view.slice_index == s and li.raw is not None else li.sampler.sample(s)
            st = roi_stats(values, box, inside, 1.0)
            lines.append(f"{layer.name}: {st.mean:.3g} ± {st.std:.3g} {layer.units}".rstrip())
        return lines
