"""Document: one open study — its layers and the shared crosshair. The single source of truth.

Views observe a Document and change it only through its fields; nothing keeps a private copy.
"""

from __future__ import annotations

import numpy as np
from psygnal import Signal

from viewer.model.annotations import AnnotationList
from viewer.model.layers import ImageLayer, Layer, LayerList
from viewer.model.volume import Volume


class Document:
    """An open study.

    Attributes:
        layers: bottom first; ``layers[0]`` is the base image that defines the display grid.
        crosshair: the linked cursor position in patient LPS mm, shared by all views.
        annotations: rulers, ROIs, arrows and texts drawn on the study (patient LPS mm).
        source: where the study came from (path or description), for titles and recent files.
    """

    crosshair_changed = Signal(object)  # np.ndarray (3,), patient LPS mm

    def __init__(self, base: Volume, name: str = "image", source: str = "") -> None:
        self.layers = LayerList([ImageLayer(name=name, volume=base)])
        self.annotations = AnnotationList()
        self.source = source
        self._crosshair = base.center_patient()

    @property
    def base_layer(self) -> ImageLayer:
        for layer in self.layers:
            if isinstance(layer, ImageLayer):
                return layer
        raise LookupError("the document has no image layer")

    @property
    def base(self) -> Volume:
        return self.base_layer.volume

    @property
    def crosshair(self) -> np.ndarray:
        return self._crosshair.copy()

    @crosshair.setter
    def crosshair(self, xyz: np.ndarray) -> None:
        xyz = np.asarray(xyz, dtype=np.float64).reshape(3)
        if not np.all(np.isfinite(xyz)) or np.allclose(xyz, self._crosshair):
            return
        self._crosshair = xyz
        self.crosshair_changed.emit(xyz.copy())

    def crosshair_index(self) -> np.ndarray:
        """Crosshair as the nearest base voxel (i, j, k), clipped into the volume."""
        ijk = np.rint(self.base.patient_to_index(self._crosshair))
        nk, nj, ni = self.base.shape3d
        return np.clip(ijk, 0, [ni - 1, nj - 1, nk - 1]).astype(int)

    def add_layer(self, layer: Layer) -> Layer:
        """Append ``layer`` on top under a name no other layer has (results never overwrite a layer)."""
        layer.name = self.layers.unique_name(layer.name)
        self.layers.append(layer)
        return layer
