"""Every user command in one table: id, menu, title and shortcut. Menus and shortcuts are built from it
(:func:`build_menus`), so the two never drift apart. The main window binds each id to a handler method
``on_<id>``.

Shortcuts work wherever the focus is: they have application context (a floating dock or the study browser
has focus too), and :class:`ShortcutsOverText` keeps text fields from swallowing the ctrl+key commands that
have no text-editing meaning (a line edit takes ctrl+E as "end of line" on Linux; ctrl+Z, ctrl+C and the
like stay with the text field).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QAction, QKeyEvent, QKeySequence
from PySide6.QtWidgets import QApplication, QMenu, QMenuBar, QWidget


@dataclass(frozen=True)
class ActionSpec:
    id: str
    menu: str
    title: str
    shortcut: str = ""
    tip: str = ""


MENU_ORDER = ("File", "Edit", "View", "Tools", "Window", "Help")

ACTIONS: tuple[ActionSpec, ...] = (
    ActionSpec("open_file", "File", "&Open File…", "Ctrl+O", "Open a DICOM, NIfTI or image file"),
    ActionSpec("open_folder", "File", "Open &Folder…", "Ctrl+Shift+O", "Scan a folder for DICOM series"),
    ActionSpec("add_image", "File", "&Add Image to Study…", "Ctrl+Shift+A",
               "Open another scan of the same patient (e.g. T1c beside FLAIR) as an image layer"),
    ActionSpec("import_folder", "File", "&Import Folder into Study Browser…", "Ctrl+I",
               "Index a folder of studies (files stay where they are)"),
    ActionSpec("save_workspace", "File", "&Save Workspace…", "Ctrl+S",
               "Save layers, annotations and display state (.lucent)"),
    ActionSpec("export_screenshot", "File", "&Export Screenshot…", "Ctrl+E",
               "Save the views as PNG (no patient identifiers)"),
    ActionSpec("copy_screenshot", "File", "&Copy Screenshot", "Ctrl+Shift+C",
               "Copy the views with legend to the clipboard (no patient identifiers)"),
    ActionSpec("convert_nifti", "File", "Save Image as &NIfTI…", "", "Write the open image as NIfTI"),
    ActionSpec("export_layer", "File", "Export Selected &Layer as NIfTI…", "",
               "Write the selected mask or heatmap on its own grid"),
    ActionSpec("export_seg", "File", "Export Selected Mask as &DICOM-SEG…", "",
               "Write the selected label mask as DICOM-SEG referencing the open DICOM series"),
    ActionSpec("send_results", "File", "Send Results to &PACS…", "",
               "Send the open study's masks, maps and findings back to a PACS / DICOMweb server"),
    ActionSpec("quit", "File", "&Quit", "Ctrl+Q"),
    ActionSpec("undo", "Edit", "&Undo", "Ctrl+Z"),
    ActionSpec("redo", "Edit", "&Redo", "Ctrl+Shift+Z"),
    ActionSpec("preferences", "Edit", "&Preferences… (device, weights)", "Ctrl+,"),
    ActionSpec("servers", "Edit", "PACS &Servers…", "", "Add or edit the PACS / DICOMweb servers"),
    ActionSpec("layout_mpr", "View", "&MPR Layout (2×2)", "Ctrl+1"),
    ActionSpec("layout_single", "View", "&Single View", "Ctrl+2"),
    ActionSpec("toggle_browser", "View", "Study &Browser", "Ctrl+B", "Show or hide the study browser"),
    ActionSpec("compare", "View", "&Compare Overlays Side by Side…", "Ctrl+3",
               "Show 2–4 overlays in linked viewports"),
    ActionSpec("reset_zoom", "View", "&Reset Zoom", "Ctrl+0"),
    ActionSpec("toggle_crosshair", "View", "Show &Crosshair", "C"),
    ActionSpec("toggle_layer", "View", "Show/Hide Selected &Layer", "V"),
    ActionSpec("tool_crosshair", "Tools", "&Crosshair (navigate)", "Esc"),
    ActionSpec("tool_ruler", "Tools", "&Ruler (mm)", "M"),
    ActionSpec("tool_ellipse", "Tools", "&Ellipse ROI (mean/std/area)", "O"),
    ActionSpec("tool_arrow", "Tools", "&Arrow", "A"),
    ActionSpec("tool_text", "Tools", "&Text", "T"),
    ActionSpec("delete_annotations", "Tools", "Delete Annotations on This &Slice", "Del"),
    ActionSpec("about", "Help", "&About Lucent"),
)

PRESET_KEYS = {"brain": "1", "subdural": "2", "stroke": "3", "lung": "4", "mediastinum": "5", "bone": "6"}

ACTIONS += tuple(ActionSpec(f"preset_{name}", "Window", f"{name.capitalize()}", key) for name, key in
                 PRESET_KEYS.items())
ACTIONS += (ActionSpec("preset_auto", "Window", "&Auto (from the image)", "0"),
            ActionSpec("preset_file", "Window", "From the &File (DICOM window)", "9"))


def build_menus(owner: QWidget, menubar: QMenuBar, handler: Callable[[str], Callable[[], None]]
                ) -> tuple[dict[str, QAction], dict[str, QMenu]]:
    """One QAction per :data:`ACTIONS` entry in its menu, triggering ``handler(id)``; shortcuts in application
    context. Returns the actions and the menus by name."""
    menus = {name: menubar.addMenu(f"&{name}") for name in MENU_ORDER}
    actions: dict[str, QAction] = {}
    for spec in ACTIONS:
        menu = menus.get(spec.menu) or menubar.addMenu(f"&{spec.menu}")
        menus[spec.menu] = menu
        action = QAction(spec.title, owner)
        if spec.shortcut:
            action.setShortcut(QKeySequence(spec.shortcut))
            action.setShortcutContext(Qt.ShortcutContext.ApplicationShortcut)
        action.setStatusTip(spec.tip)
        run = handler(spec.id)
        action.triggered.connect(lambda _checked=False, h=run: h())
        menu.addAction(action)
        actions[spec.id] = action
    return actions, menus


#: Standard keys a text field keeps even when a command shares them.
_TEXT_KEYS = (QKeySequence.StandardKey.Undo, QKeySequence.StandardKey.Redo, QKeySequence.StandardKey.Copy,
              QKeySequence.StandardKey.Cut, QKeySequence.StandardKey.Paste, QKeySequence.StandardKey.SelectAll)


def command_keys() -> set[int]:
    """Key combinations (``QKeyCombination.toCombined()``) of the ctrl commands text fields must not swallow."""
    keep = {QKeySequence(k)[0].toCombined() for std in _TEXT_KEYS for k in QKeySequence.keyBindings(std)}
    out = set()
    for spec in ACTIONS:
        if "Ctrl+" in spec.shortcut:
            combined = QKeySequence(spec.shortcut)[0].toCombined()
            if combined not in keep:
                out.add(combined)
    return out


class ShortcutsOverText(QObject):
    """Application event filter: a text field's claim on a ctrl+key command (``ShortcutOverride``) is refused,
    so the command runs. Install once with ``QApplication.instance().installEventFilter(...)``."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.keys = command_keys()

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt API)
        if (event.type() == QEvent.Type.ShortcutOverride and isinstance(event, QKeyEvent)
                and event.keyCombination().toCombined() in self.keys):
            event.ignore()
            return True  # the widget never sees it: the shortcut map triggers the command
        return False


def install_shortcuts_over_text(app: QApplication | None = None) -> ShortcutsOverText:
    """Install (once per application) the :class:`ShortcutsOverText` filter; returns it."""
    app = app or QApplication.instance()
    existing = app.findChild(ShortcutsOverText)
    if existing is not None:
        return existing
    f = ShortcutsOverText(app)
    app.installEventFilter(f)
    return f
