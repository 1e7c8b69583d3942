"""CompareView: the same plane of one Document side by side, each viewport with its own overlays.

Slice, crosshair and window/level are shared through the Document; zoom and pan are linked between the
viewports (pyqtgraph ViewBox x/y links). Each pane draws the overlays it was given whatever their visibility
in the layer list. Panes are laid out to fit their number: 2 or 3 side by side, 4 as 2×2. Typical use: two
engines' heatmaps, or a heatmap next to the ground-truth mask.
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QGridLayout, QWidget

from viewer.model.document import Document
from viewer.model.layers import Layer
from viewer.views.slice_view import SliceView


def pane_position(n: int, count: int) -> tuple[int, int]:
    """(row, column) of pane ``n`` of ``count``: one row for 2 or 3 panes, 2×2 for 4 (no empty cell)."""
    return (n // 2, n % 2) if count == 4 else (0, n)


class CompareView(QWidget):
    """2 or 3 viewports in a row, or 4 as 2×2; ``groups[n]`` are the overlays viewport n shows."""

    hovered = Signal(str)
    annotation_drawn = Signal(object)
    annotation_edited = Signal(object, object)
    annotation_text_requested = Signal(object)

    def __init__(self, document: Document, groups: Sequence[Sequence[Layer]], plane: str = "axial",
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        if not 2 <= len(groups) <= 4:
            raise ValueError("compare shows 2 to 4 viewports")
        self.document = document
        plane = "native" if document.base.is_2d else plane
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setSpacing(2)
        self.viewports: list[SliceView] = []
        for n, group in enumerate(groups):
            view = SliceView(document, plane, self, only_layers={id(la) for la in group})
            view.hovered.connect(self.hovered)
            view.annotation_drawn.connect(self.annotation_drawn)
            view.annotation_edited.connect(self.annotation_edited)
            view.annotation_text_requested.connect(self.annotation_text_requested)
            row, col = pane_position(n, len(groups))
            grid.addWidget(view, row, col)
            if self.viewports:
                view.viewbox.setXLink(self.viewports[0].viewbox)
                view.viewbox.setYLink(self.viewports[0].viewbox)
            self.viewports.append(view)
        self.views = {f"{plane} {n + 1}": v for n, v in enumerate(self.viewports)}
        self.layout_name = "compare"

    @property
    def primary(self) -> SliceView:
        return self.viewports[0]

    def set_tool(self, tool: str | None) -> None:
        for v in self.viewports:
            v.tool = tool

    def reset_zoom(self) -> None:
        self.viewports[0].reset_zoom()

    def detach(self) -> None:
        for v in self.viewports:
            v.detach()
