"""The font for text burnt into views and exports: one that has the glyphs Lucent's legends use.

Legends carry Greek letters (RadZero's τ), dashes, arrows, bullets and “quotes”; Qt's default font on a bare
Linux (or the offscreen platform) may lack them and draw boxes. DejaVu Sans (Debian's fonts-dejavu-core, which
setup installs) has them all; the first family of :data:`FAMILIES` that has every glyph of :data:`GLYPHS` wins.
"""

from __future__ import annotations

from functools import cache

from PySide6.QtGui import QFont, QFontDatabase, QFontMetrics

FAMILIES = ("DejaVu Sans", "Noto Sans", "Liberation Sans", "Arial")
GLYPHS = "τβ–—·•■▲▼→≥≤×“”°±µ"  # what legends, layer names and read-outs use beyond ASCII


@cache
def legend_family() -> str:
    """The first installed family of :data:`FAMILIES` that draws every glyph of :data:`GLYPHS` ("" if none)."""
    installed = set(QFontDatabase.families())
    for family in FAMILIES:
        if family in installed and all(QFontMetrics(QFont(family)).inFontUcs4(ord(c)) for c in GLYPHS):
            return family
    return ""


def legend_font(pixel_size: int, bold: bool = False) -> QFont:
    """A :func:`legend_family` font of ``pixel_size`` pixels (the application font when none qualifies)."""
    family = legend_family()
    font = QFont(family) if family else QFont()
    font.setPixelSize(max(1, int(pixel_size)))
    font.setBold(bold)
    return font
