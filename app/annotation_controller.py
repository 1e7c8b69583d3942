"""Annotation controller: the drawing tools (crosshair, ruler, ellipse, arrow, text) and adding, editing
and deleting annotations on the Document through the window's undo stack."""

from __future__ import annotations

from app.annotation_commands import AddAnnotation, EditAnnotation, RemoveAnnotations

TOOLS = ("crosshair", "ruler", "ellipse", "arrow", "text")


class AnnotationController:
    """The window's tool handlers (``on_tool_*``, ``on_delete_annotations``) and annotation edits."""

    def __init__(self, window) -> None:  # window: MainWindow
        self.window = window

    def set_tool(self, name: str) -> None:
        """Current drawing tool for all views ("crosshair" to navigate)."""
        self.window.actions_by_id[f"tool_{name}"].setChecked(True)
        if self.window.study_view is not None:
            self.window.study_view.set_tool(None if name == "crosshair" else name)

    def on_tool_crosshair(self) -> None:
        self.set_tool("crosshair")

    def on_tool_ruler(self) -> None:
        self.set_tool("ruler")

    def on_tool_ellipse(self) -> None:
        self.set_tool("ellipse")

    def on_tool_arrow(self) -> None:
        self.set_tool("arrow")

    def on_tool_text(self) -> None:
        self.set_tool("text")

    def current_tool(self) -> str:
        return next(n for n in TOOLS if self.window.actions_by_id[f"tool_{n}"].isChecked())

    def add_annotation(self, annotation) -> None:
        """Add a drawn annotation (undoable); text and arrows ask for their label first."""
        if self.window.document is None:
            return
        if annotation.kind in ("text", "arrow"):
            text = self.window.ask_text("Label:" if annotation.kind == "arrow" else "Text:")
            if text is None or (annotation.kind == "text" and not text.strip()):
                return
            annotation.text = text
        self.window.undo_stack.push(AddAnnotation(self.window.document, annotation))

    def edit_annotation(self, old, new) -> None:
        """Put an edited copy of ``old`` in its place (undoable)."""
        if self.window.document is not None and old in self.window.document.annotations:
            self.window.undo_stack.push(EditAnnotation(self.window.document, old, new))

    def edit_annotation_text(self, annotation) -> None:
        """Ask for a new label for a text or arrow annotation (undoable)."""
        from viewer.model.annotations import Annotation

        text = self.window.ask_text("Label:")
        if text is not None and (text.strip() or annotation.kind == "arrow"):
            self.edit_annotation(annotation, Annotation(annotation.kind, annotation.plane, annotation.points, text))

    def on_delete_annotations(self) -> None:
        """Delete the annotations shown on the focused (or axial) view's current slice."""
        if self.window.document is None or self.window.study_view is None:
            return
        from viewer.model.annotations import on_slice

        study_view = self.window.study_view
        view = next((v for v in study_view.views.values() if v.hasFocus()), study_view.primary)
        doomed = [a for a in self.window.document.annotations
                  if on_slice(a, self.window.document.base, view.mapping, view.slice_index)]
        if doomed:
            self.window.undo_stack.push(RemoveAnnotations(self.window.document, doomed))
