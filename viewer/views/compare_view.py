"""CompareView: the same plane of one Document side by side, each viewport with its own overlays.

Slice, crosshair and window/level are shared through the Document; zoom and pan are linked between the
viewports (pyqtgraph ViewBox x/y links). For a 3D study each pane also has a 3D view of its overlays under the
slice, and the 3D cameras are linked: turning one turns them all. Each pane draws the overlays it was given
whatever their visibility in the layer list. Panes are laid out to fit their number: 2 or 3 side by side,
4 as 2×2. Typical use: two engines' heatmaps, or a heatmap next to the ground-truth mask.
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import QGridLayout, QVBoxLayout, QWidget

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
                 parent: QWidget | None = None, with_3d: bool = True) -> None:
        """``with_3d``: give each pane of a 3D study a linked 3D view (created just after the first paint)."""
        super().__init__(parent)
        if not 2 <= len(groups) <= 4:
            raise ValueError("compare shows 2 to 4 viewports")
        self.document = document
        plane = "native" if document.base.is_2d else plane
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setSpacing(2)
        self.viewports: list[SliceView] = []
        self.panes: list[QWidget] = []
        self.views_3d: list = []
        self._groups = [{id(la) for la in group} for group in groups]
        self._detached = False
        for n in range(len(groups)):
            pane = QWidget(self)
            column = QVBoxLayout(pane)
            column.setContentsMargins(0, 0, 0, 0)
            column.setSpacing(2)
            view = SliceView(document, plane, pane, only_layers=self._groups[n])
            column.addWidget(view, 3)
            view.hovered.connect(self.hovered)
            view.annotation_drawn.connect(self.annotation_drawn)
            view.annotation_edited.connect(self.annotation_edited)
            view.annotation_text_requested.connect(self.annotation_text_requested)
            row, col = pane_position(n, len(groups))
            grid.addWidget(pane, row, col)
            self.panes.append(pane)
            if self.viewports:
                view.viewbox.setXLink(self.viewports[0].viewbox)
                view.viewbox.setYLink(self.viewports[0].viewbox)
            self.viewports.append(view)
        self.views = {f"{plane} {n + 1}": v for n, v in enumerate(self.viewports)}
        self.layout_name = "compare"
        if with_3d and not document.base.is_2d:
            QTimer.singleShot(150, self.ensure_3d)

    def ensure_3d(self) -> None:
        """Add each pane's 3D view (its overlays only) and link their cameras; idempotent."""
        if self.views_3d or self._detached or self.document.base.is_2d:
            return
        from viewer.views.view3d import View3D

        for pane, only in zip(self.panes, self._groups, strict=True):
            view = View3D(self.document, pane, only_layers=only)
            pane.layout().addWidget(view, 2)
            self.views_3d.append(view)
        for view in self.views_3d:
            for other in self.views_3d:
                if other is not view:
                    view.camera_changed.connect(other.follow_camera)

    @property
    def primary(self) -> SliceView:
        return self.viewports[0]

    def set_tool(self, tool: str | None) -> None:
        for v in self.viewports:
            v.tool = tool

    def reset_zoom(self) -> None:
        self.viewports[0].reset_zoom()

    def detach(self) -> None:
        self._detached = True
        for v in self.viewports:
            v.detach()
        for v in self.views_3d:
            v.shutdown()
