"""Undoable annotation edits (Qt undo commands): add, edit (replace by an edited copy), delete."""

from __future__ import annotations

from PySide6.QtGui import QUndoCommand

from viewer.model.document import Document


class AddAnnotation(QUndoCommand):
    def __init__(self, document: Document, annotation) -> None:
        super().__init__(f"Add {annotation.kind}")
        self.document, self.annotation = document, annotation

    def redo(self) -> None:
        self.document.annotations.append(self.annotation)

    def undo(self) -> None:
        self.document.annotations.remove(self.annotation)


class EditAnnotation(QUndoCommand):
    """Replace an annotation by its edited copy (moved point, new text); undo puts the old one back."""

    def __init__(self, document: Document, old, new) -> None:
        super().__init__(f"Edit {old.kind}")
        self.document, self.old, self.new = document, old, new

    def _swap(self, current, other) -> None:
        annotations = self.document.annotations
        annotations[annotations.index(current)] = other

    def redo(self) -> None:
        self._swap(self.old, self.new)

    def undo(self) -> None:
        self._swap(self.new, self.old)


class RemoveAnnotations(QUndoCommand):
    def __init__(self, document: Document, annotations: list) -> None:
        super().__init__(f"Delete {len(annotations)} annotation(s)")
        self.document, self.annotations = document, annotations
        self.indices = [document.annotations.index(a) for a in annotations]

    def redo(self) -> None:
        for a in self.annotations:
            self.document.annotations.remove(a)

    def undo(self) -> None:
        for i, a in sorted(zip(self.indices, self.annotations, strict=True), key=lambda t: t[0]):
            self.document.annotations.insert(i, a)
