"""Text and scale bar painted over a slice view: orientation letters, slice, W/L, read-out, scale bar.

A transparent child widget on top of the graphics view, so that it stays put while the image is panned
and zoomed, and is captured by ``QWidget.grab()`` for screenshots.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPen
from PySide6.QtWidgets import QWidget

from viewer.views.fonts import legend_family


def nice_length(target: float) -> float:
    """The largest 1, 2 or 5 × 10ⁿ not above ``target`` (> 0)."""
    if target <= 0 or not math.isfinite(target):
        return 0.0
    exp = math.floor(math.log10(target))
    for m in (5, 2, 1):
        if m * 10**exp <= target:
            return m * 10**exp
    return 10**exp


@dataclass(frozen=True)
class ColorBar:
    """A legend for one heatmap: its colour table (256×4 RGBA), value range, title and units."""

    lut: np.ndarray
    low: float
    high: float
    title: str
    units: str = ""


class ViewAnnotations(QWidget):
    """Paints the corner texts, edge letters and a scale bar for one slice view."""

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.setAttribute(Qt.WidgetAttribute.WA_NoSystemBackground)
        self.letters: dict[str, str] = {}
        self.top_left = ""
        self.bottom_left = ""
        self.bottom_right = ""
        self.mm_per_pixel = 0.0  # screen scale; 0 hides the scale bar
        self.units = "mm"
        self.colorbars: list[ColorBar] = []

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt API)
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.TextAntialiasing)
        font = QFont(self.font())
        if legend_family():
            font.setFamily(legend_family())  # has τ, dashes, arrows: legends draw no boxes
        font.setPointSizeF(max(8.0, font.pointSizeF()))
        p.setFont(font)
        w, h = self.width(), self.height()
        fm = p.fontMetrics()
        p.setPen(QColor(255, 220, 80))
        big = QFont(font)
        big.setBold(True)
        big.setPointSizeF(font.pointSizeF() * 1.2)
        p.setFont(big)
        bfm = p.fontMetrics()
        for edge, text in self.letters.items():
            tw = bfm.horizontalAdvance(text)
            if edge == "left":
                pos = QPointF(4, h / 2 + bfm.ascent() / 2)
            elif edge == "right":
                pos = QPointF(w - tw - 4, h / 2 + bfm.ascent() / 2)
            elif edge == "top":
                pos = QPointF(w / 2 - tw / 2, bfm.ascent() + 2)
            else:
                pos = QPointF(w / 2 - tw / 2, h - bfm.descent() - 2)
            p.drawText(pos, text)
        p.setFont(font)
        p.setPen(QColor(230, 230, 230))
        line_h = fm.height()
        for i, line in enumerate(self.top_left.splitlines()):  # long layer names elided inside the view
            line = fm.elidedText(line, Qt.TextElideMode.ElideMiddle, max(20, w - 12))
            p.drawText(QPointF(6, fm.ascent() + 4 + i * line_h), line)
        for i, line in enumerate(reversed(self.bottom_left.splitlines())):
            p.drawText(QPointF(6, h - 6 - fm.descent() - i * line_h), line)
        for i, line in enumerate(reversed(self.bottom_right.splitlines())):
            tw = fm.horizontalAdvance(line)
            p.drawText(QPointF(w - tw - 6, h - 6 - fm.descent() - i * line_h), line)
        self._paint_scale_bar(p, w, h, line_h)
        self._paint_colorbars(p, w, h, fm)
        p.end()

    def _paint_colorbars(self, p: QPainter, w: int, h: int, fm) -> None:
        """Colour bars in the upper right, newest rightmost: high value on top, titles stacked above.

        They stay clear of the orientation letter at the middle of the right edge.
        """
        line_h = fm.height()
        n = len(self.colorbars)
        top = int(h * 0.08) + n * line_h
        bar_w, bar_h = 12, max(40, int(h * 0.42) - top)
        x = w - 30
        for idx, cb in enumerate(reversed(self.colorbars)):
            ramp = np.ascontiguousarray(np.repeat(cb.lut[::-1, None, :], bar_w, axis=1))
            img = QImage(ramp.data, bar_w, 256, 4 * bar_w, QImage.Format.Format_RGBA8888)
            labels = [f"{cb.high:.3g}", f"{cb.low:.3g}"]
            label_w = max(fm.horizontalAdvance(t) for t in labels)
            p.drawImage(QRectF(x, top, bar_w, bar_h), img)
            p.setPen(QColor(230, 230, 230))
            p.drawRect(QRectF(x, top, bar_w, bar_h))
            p.drawText(QPointF(x - label_w - 3, top + fm.ascent()), labels[0])
            p.drawText(QPointF(x - label_w - 3, top + bar_h), labels[1])
            title = cb.title + (f" ({cb.units})" if cb.units else "")
            title = fm.elidedText(title, Qt.TextElideMode.ElideRight, int(w * 0.6))
            tw = fm.horizontalAdvance(title)
            p.drawText(QPointF(x + bar_w - tw, top - 4 - idx * line_h), title)
            x -= bar_w + label_w + 12

    def _paint_scale_bar(self, p: QPainter, w: int, h: int, line_h: int) -> None:
        if self.mm_per_pixel <= 0:
            return
        length_mm = nice_length(0.2 * w * self.mm_per_pixel)
        if length_mm <= 0:
            return
        px = length_mm / self.mm_per_pixel
        x1 = w - 24
        x0 = x1 - px
        y = h - 10 - 2 * line_h
        p.setPen(QPen(QColor(230, 230, 230), 2))
        p.drawLine(QPointF(x0, y), QPointF(x1, y))
        p.drawLine(QPointF(x0, y - 4), QPointF(x0, y + 4))
        p.drawLine(QPointF(x1, y - 4), QPointF(x1, y + 4))
        label = f"{length_mm:g} {self.units}"
        p.drawText(QRectF(x0 - 40, y - line_h - 4, px + 80, line_h), Qt.AlignmentFlag.AlignCenter, label)
