"""Every user command in one table: id, menu, title and shortcut. Menus and shortcuts are built from it,
so the two never drift apart. The main window binds each id to a handler method ``on_<id>``."""

from __future__ import annotations

from dataclasses import dataclass


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
