"""Layer panel: the Document's layers, top first, with visibility, reorder, rename and delete (undoable), and
below them the selected layer's controls — those of its kind (:mod:`app.panels.layer_controls`: opacity, and
colour map, range, threshold or outline). Every control writes to the layer; the panel listens to the layers'
events, so a change made elsewhere (an engine result, a script) shows up here too."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QUndoCommand, QUndoStack
from PySide6.QtWidgets import (
    QHBoxLayout,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSizePolicy,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from app.panels.layer_controls import CONTROLS, HeatmapControls, LayerControls, controls_class
from viewer.model.document import Document
from viewer.model.layers import HeatmapLayer, ImageLayer, Layer


class RemoveLayer(QUndoCommand):
    """Undoable removal of one layer (it is re-inserted at its old position on undo)."""

    def __init__(self, document: Document, layer: Layer) -> None:
        super().__init__(f"Delete layer {layer.name}")
        self.document, self.layer = document, layer
        self.index = document.layers.index(layer)

    def redo(self) -> None:
        self.document.layers.remove(self.layer)

    def undo(self) -> None:
        self.document.layers.insert(self.index, self.layer)


def layer_tooltip(layer: Layer) -> str:
    """The layer's full name (the list elides long ones), kind, query and provenance."""
    lines = [layer.name, f"{layer.kind} layer" + (" (hidden)" if not layer.visible else "")]
    if getattr(layer, "query", ""):
        lines.append(f"answers the query “{layer.query}” (a new query updates this layer)")
    if layer.provenance:
        lines.append(layer.provenance)
    return "\n".join(lines)


class LayerPanel(QWidget):
    """Lists and edits the layers of one Document. Its width never follows the layer names (they are elided)."""

    def __init__(self, undo_stack: QUndoStack, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.undo_stack = undo_stack
        self.document: Document | None = None
        self._syncing = False
        lay = QVBoxLayout(self)
        self.list = QListWidget()
        self.list.setTextElideMode(Qt.TextElideMode.ElideMiddle)  # long names elided; the tooltip has them whole
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.list.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Expanding)
        self.list.setEditTriggers(QListWidget.EditTrigger.DoubleClicked | QListWidget.EditTrigger.EditKeyPressed)
        self.list.currentRowChanged.connect(self._on_select)
        self.list.itemChanged.connect(self._on_item_changed)
        lay.addWidget(self.list)
        buttons = QHBoxLayout()
        self.up_btn = QPushButton("▲")
        self.down_btn = QPushButton("▼")
        self.delete_btn = QPushButton("Delete")
        for b, tip in ((self.up_btn, "Move up"), (self.down_btn, "Move down"), (self.delete_btn, "Delete layer")):
            b.setToolTip(tip)
            buttons.addWidget(b)
        self.up_btn.clicked.connect(lambda: self.move_selected(+1))
        self.down_btn.clicked.connect(lambda: self.move_selected(-1))
        self.delete_btn.clicked.connect(self.delete_selected)
        lay.addLayout(buttons)
        self.stack = QStackedWidget()  # the selected layer's kind's controls (app.panels.layer_controls)
        self._controls: dict[type[LayerControls], LayerControls] = {}
        for cls in (LayerControls, *CONTROLS.values()):  # every page now: the panel's size never changes later
            self._controls_for_class(cls)
        lay.addWidget(self.stack)
        self._update_controls()

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt API)
        return QSize(260, 420)

    # ---- document binding ----------------------------------------------------------------------------
    def set_document(self, document: Document | None) -> None:
        if self.document is not None:
            self._listen(False)
        self.document = document
        if document is not None:
            self._listen(True)
        self._refill()

    def _listen(self, on: bool) -> None:
        ev = self.document.layers.events
        for name in ("inserted", "removed", "moved", "changed", "reordered"):
            sig = getattr(ev, name)
            sig.connect(self._refill) if on else sig.disconnect(self._refill)
        ev.child_event.connect(self._on_child_event) if on else ev.child_event.disconnect(self._on_child_event)

    def _on_child_event(self, info) -> None:
        if info.signal.name in ("name", "visible"):
            self._refill(keep_selection=True)
        elif not self._syncing:
            self.controls.refresh()

    def layers_top_first(self) -> list[Layer]:
        return list(reversed(list(self.document.layers))) if self.document else []

    def _refill(self, *_args, keep_selection: bool = True) -> None:
        selected = self.selected_layer() if keep_selection else None
        self._syncing = True
        self.list.clear()
        for layer in self.layers_top_first():
            item = QListWidgetItem(layer.name)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable | Qt.ItemFlag.ItemIsEditable)
            item.setCheckState(Qt.CheckState.Checked if layer.visible else Qt.CheckState.Unchecked)
            item.setToolTip(layer_tooltip(layer))
            self.list.addItem(item)
        layers = self.layers_top_first()
        row = layers.index(selected) if selected in layers else (0 if layers else -1)
        self.list.setCurrentRow(row)
        self._syncing = False
        self._update_controls()

    def selected_layer(self) -> Layer | None:
        row = self.list.currentRow()
        layers = self.layers_top_first()
        return layers[row] if 0 <= row < len(layers) else None

    # ---- controls → layer ----------------------------------------------------------------------------
    def _on_select(self, _row: int) -> None:
        if not self._syncing:
            self._update_controls()

    def _on_item_changed(self, item: QListWidgetItem) -> None:
        if self._syncing:
            return
        layer = self.layers_top_first()[self.list.row(item)]
        visible = item.checkState() == Qt.CheckState.Checked
        name = item.text().strip()
        if name and name != layer.name:
            layer.name = self.document.layers.unique_name(name)
        if visible != layer.visible:
            layer.visible = visible

    @property
    def controls(self) -> LayerControls:
        """The controls shown now: those of the selected layer's kind."""
        return self._controls_for(self.selected_layer())

    def _controls_for(self, layer: Layer | None) -> LayerControls:
        return self._controls_for_class(controls_class(layer))

    def _controls_for_class(self, cls: type[LayerControls]) -> LayerControls:
        if cls not in self._controls:
            made = cls(share_scale_with=self.share_scale) if cls is HeatmapControls else cls()
            self._controls[cls] = made
            self.stack.addWidget(made)
        return self._controls[cls]

    def _update_controls(self) -> None:
        layer = self.selected_layer()
        controls = self._controls_for(layer)
        self.stack.setCurrentWidget(controls)
        controls.bind(layer)
        self.delete_btn.setEnabled(layer is not None and not self._is_last_image(layer))

    def _is_last_image(self, layer: Layer) -> bool:
        images = [la for la in self.document.layers if isinstance(la, ImageLayer)] if self.document else []
        return isinstance(layer, ImageLayer) and len(images) == 1

    # ---- commands ------------------------------------------------------------------------------------
    def toggle_selected(self) -> None:
        """Show/hide the selected layer (key V)."""
        layer = self.selected_layer()
        if layer is not None:
            layer.visible = not layer.visible

    def share_scale(self, layer: HeatmapLayer) -> None:
        """Copy ``layer``'s value range, colour map and threshold to every other heatmap of the document."""
        for other in self.document.layers:
            if isinstance(other, HeatmapLayer) and other is not layer:
                other.value_range = layer.value_range
                other.colormap = layer.colormap
                other.threshold = layer.threshold

    def move_selected(self, up: int) -> None:
        """Move the selected layer up (+1, drawn later/on top) or down (−1) in the stack."""
        layer = self.selected_layer()
        if layer is None:
            return
        layers = self.document.layers
        i = layers.index(layer)
        j = i + up
        if 0 <= j < len(layers):
            layers.move(i, j if j < i else j + 1)

    def delete_selected(self) -> None:
        """Delete the selected layer; Edit ▸ Undo brings it back. The last image layer cannot go."""
        layer = self.selected_layer()
        if layer is None or self._is_last_image(layer):
            return
        self.undo_stack.push(RemoveLayer(self.document, layer))
