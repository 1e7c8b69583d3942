"""Small pieces shared by Lucent's dialogs."""

from __future__ import annotations

from PySide6.QtWidgets import QDialog, QDialogButtonBox


def ok_cancel(dialog: QDialog, ok: QDialogButtonBox.StandardButton = QDialogButtonBox.StandardButton.Ok
              ) -> QDialogButtonBox:
    """An OK (or ``ok``) / Cancel button row that accepts or rejects ``dialog``."""
    buttons = QDialogButtonBox(ok | QDialogButtonBox.StandardButton.Cancel)
    buttons.accepted.connect(dialog.accept)
    buttons.rejected.connect(dialog.reject)
    return buttons
