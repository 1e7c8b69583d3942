"""Qt-free model: Volume, layers, Document, display geometry and window/level."""

from viewer.model.document import Document
from viewer.model.geometry import PLANES, OverlaySampler, SliceMapping
from viewer.model.layers import HeatmapLayer, ImageLayer, LabelsLayer, Layer, LayerList
from viewer.model.volume import LPS_FROM_RAS, Volume
from viewer.model.window_level import PRESETS, WindowLevel, auto_window

__all__ = ["Document", "HeatmapLayer", "ImageLayer", "LabelsLayer", "Layer", "LayerList", "LPS_FROM_RAS",
           "OverlaySampler", "PLANES", "PRESETS", "SliceMapping", "Volume", "WindowLevel", "auto_window"]
