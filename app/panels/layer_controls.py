"""The controls of each layer kind, as napari gives each layer type its own Qt controls.

:class:`LayerControls` holds what every kind has (opacity) and the binding to one layer: a control writes to
the layer, and :meth:`LayerControls.refresh` reads the layer back when it changed elsewhere. Each kind adds its
own: :class:`ImageControls` (colour map of grey images), :class:`LabelsControls` (outline only) and
:class:`HeatmapControls` (colour map, value range, threshold, one scale for all maps). :func:`controls_class`
picks the class for a layer from :data:`CONTROLS` (its type or nearest base class), so a new layer kind
brings its own controls instead of another ``isinstance`` branch in the panel.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QPushButton, QSlider, QWidget

from viewer.model.colormaps import CONTINUOUS
from viewer.model.layers import HeatmapLayer, ImageLayer, LabelsLayer, Layer


class LayerControls(QWidget):
    """Controls of one layer at a time; subclasses add their kind's rows in :meth:`build`."""

    kind: ClassVar[type[Layer]] = Layer

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.layer: Layer | None = None
        self._syncing = False
        self.form = QFormLayout(self)
        self.form.setContentsMargins(0, 0, 0, 0)
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setToolTip("How much of the layer covers what lies under it (0–100 %)")
        self.opacity.valueChanged.connect(lambda v: self.set_field("opacity", v / 100))
        self.form.addRow("Opacity", self.opacity)
        self.build()

    def build(self) -> None:
        """Add this kind's rows to :attr:`form` (nothing for the common controls)."""

    def bind(self, layer: Layer | None) -> None:
        """Show and edit ``layer`` (None: nothing)."""
        self.layer = layer
        self.setEnabled(layer is not None)
        self.refresh()

    def refresh(self) -> None:
        """Read the bound layer's fields into the controls (no writes back)."""
        if self.layer is None:
            return
        self._syncing = True
        try:
            self.opacity.setValue(round(self.layer.opacity * 100))
            self.read(self.layer)
        finally:
            self._syncing = False

    def read(self, layer: Any) -> None:
        """This kind's part of :meth:`refresh`."""

    def set_field(self, name: str, value: object) -> None:
        """Write ``value`` into the bound layer's field ``name`` (ignored while the controls are being filled)."""
        if not self._syncing and self.layer is not None:
            setattr(self.layer, name, value)

    @staticmethod
    def spin(slot: Callable[[float], None]) -> QDoubleSpinBox:
        s = QDoubleSpinBox()
        s.setDecimals(3)
        s.setRange(-1e9, 1e9)
        s.setKeyboardTracking(False)
        s.valueChanged.connect(slot)
        return s

    def colormap_box(self) -> QComboBox:
        box = QComboBox()
        box.addItems(list(CONTINUOUS))
        box.currentTextChanged.connect(lambda t: self.set_field("colormap", t))
        return box


class ImageControls(LayerControls):
    """An image: its colour map (grey images only; colour photos are shown as they are)."""

    kind = ImageLayer

    def build(self) -> None:
        self.colormap = self.colormap_box()
        self.form.addRow("Colours", self.colormap)

    def read(self, layer: ImageLayer) -> None:
        self.colormap.setEnabled(not layer.volume.rgb)
        if layer.colormap in CONTINUOUS:
            self.colormap.setCurrentText(layer.colormap)


class LabelsControls(LayerControls):
    """A label mask: filled or outlined."""

    kind = LabelsLayer

    def build(self) -> None:
        self.outline = QCheckBox("outline only")
        self.outline.toggled.connect(lambda on: self.set_field("outline", on))
        self.form.addRow("", self.outline)

    def read(self, layer: LabelsLayer) -> None:
        self.outline.setChecked(layer.outline)


class HeatmapControls(LayerControls):
    """A continuous map: colour map, value range (low, high) in its units, threshold, and one scale for all.

    ``share_scale_with``: called with the bound map when the user asks for one scale for every map (the panel
    knows the document's other maps).
    """

    kind = HeatmapLayer

    def __init__(self, share_scale_with: Callable[[HeatmapLayer], None] | None = None,
                 parent: QWidget | None = None) -> None:
        self._share = share_scale_with
        super().__init__(parent)

    def build(self) -> None:
        self.colormap = self.colormap_box()
        self.low = self.spin(lambda v: self._set_range(low=v))
        self.high = self.spin(lambda v: self._set_range(high=v))
        self.threshold_on = QCheckBox("threshold")
        self.threshold_on.setToolTip("Values below it are transparent (the engine's operating point to start)")
        self.threshold = self.spin(lambda _v: self._set_threshold())
        self.threshold_on.toggled.connect(lambda _on: self._set_threshold())
        self.share_scale = QPushButton("Same scale for all heatmaps")
        self.share_scale.setToolTip("Give every heatmap the selected one's range and colours, to compare engines")
        self.share_scale.clicked.connect(lambda: self._share and self.layer is not None and self._share(self.layer))
        self.form.addRow("Colours", self.colormap)
        self.form.addRow("Low", self.low)
        self.form.addRow("High", self.high)
        self.form.addRow(self.threshold_on, self.threshold)
        self.form.addRow(self.share_scale)

    def read(self, layer: HeatmapLayer) -> None:
        if layer.colormap in CONTINUOUS:
            self.colormap.setCurrentText(layer.colormap)
        self.low.setValue(layer.value_range[0])
        self.high.setValue(layer.value_range[1])
        self.threshold_on.setChecked(layer.threshold is not None)
        if layer.threshold is not None:
            self.threshold.setValue(layer.threshold)

    def _set_range(self, low: float | None = None, high: float | None = None) -> None:
        if self._syncing or self.layer is None:
            return
        lo, hi = self.layer.value_range
        lo = lo if low is None else low
        hi = hi if high is None else high
        if hi > lo:
            self.layer.value_range = (lo, hi)

    def _set_threshold(self) -> None:
        self.set_field("threshold", self.threshold.value() if self.threshold_on.isChecked() else None)


#: The controls of each layer kind; :func:`controls_class` also finds a subclass's nearest listed base class.
CONTROLS: dict[type[Layer], type[LayerControls]] = {
    ImageLayer: ImageControls,
    LabelsLayer: LabelsControls,
    HeatmapLayer: HeatmapControls,
}


def controls_class(layer: Layer | None) -> type[LayerControls]:
    """The controls class for ``layer``'s kind (:class:`LayerControls` for kinds with none of their own)."""
    if layer is None:
        return LayerControls
    return next((CONTROLS[k] for k in type(layer).__mro__ if k in CONTROLS), LayerControls)
