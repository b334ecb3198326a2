"""The gallery panel: imported folders with their photo counts (photos, missing, and files the last
import of each could not read); import, re-scan, remove."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from core.common.types import FolderSummary


class GalleryPanel(QWidget):
    importRequested = Signal()
    rescanRequested = Signal(str)  # folder
    removeRequested = Signal(str)  # folder
    pruneRequested = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["Folder", "Photos", "Missing", "Failed"])
        self.tree.headerItem().setToolTip(2, "Photos whose files were found gone (Forget missing removes them)")
        self.tree.headerItem().setToolTip(
            3, "Files under the folder that its last import could not read (Re-scan tries again)"
        )
        self.tree.setRootIsDecorated(False)
        self.tree.setAlternatingRowColors(True)
        header = self.tree.header()
        header.setSectionResizeMode(0, QHeaderView.Stretch)
        for column in (1, 2, 3):
            header.setSectionResizeMode(column, QHeaderView.ResizeToContents)
        self.tree.itemSelectionChanged.connect(self._selection_changed)
        self.total = QLabel("No gallery loaded.")

        self.import_button = QPushButton("Import folder…")
        self.rescan_button = QPushButton("Re-scan")
        self.remove_button = QPushButton("Remove")
        self.prune_button = QPushButton("Forget missing")
        self.rescan_button.setToolTip("Import the folder again: new and changed photos are added, moves followed")
        self.remove_button.setToolTip("Remove the folder's photos from the gallery (the files are not touched)")
        self.prune_button.setToolTip("Forget photos whose files were found gone")
        self.import_button.clicked.connect(self.importRequested)
        self.rescan_button.clicked.connect(lambda: self._emit_for_selected(self.rescanRequested))
        self.remove_button.clicked.connect(lambda: self._emit_for_selected(self.removeRequested))
        self.prune_button.clicked.connect(self.pruneRequested)

        buttons = QHBoxLayout()
        for button in (self.import_button, self.rescan_button, self.remove_button, self.prune_button):
            buttons.addWidget(button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.tree, 1)
        layout.addWidget(self.total)
        layout.addLayout(buttons)
        self.set_enabled(False)

    def set_enabled(self, enabled: bool) -> None:
        self.import_button.setEnabled(enabled)
        self.prune_button.setEnabled(enabled)
        self._enabled = enabled
        self._selection_changed()

    def set_folders(self, folders: list[FolderSummary]) -> None:
        selected = self.selected_folder()
        self.tree.clear()
        for summary in folders:
            counts = [str(summary.photos), str(summary.missing or ""), str(summary.failed or "")]
            item = QTreeWidgetItem([summary.folder, *counts])
            item.setData(0, Qt.UserRole, summary.folder)
            item.setToolTip(0, summary.folder)
            for column in (1, 2, 3):
                item.setTextAlignment(column, Qt.AlignRight | Qt.AlignVCenter)
            self.tree.addTopLevelItem(item)
            if summary.folder == selected:
                item.setSelected(True)
        photos = sum(f.photos for f in folders)
        missing = sum(f.missing for f in folders)
        failed = sum(f.failed for f in folders)
        text = f"{photos} photo(s) in {len(folders)} folder(s)"
        text += (f", {missing} missing" if missing else "") + (f", {failed} failed" if failed else "")
        self.total.setText(text)
        self._selection_changed()

    def selected_folder(self) -> str | None:
        items = self.tree.selectedItems()
        return items[0].data(0, Qt.UserRole) if items else None

    def _selection_changed(self) -> None:
        has = self.selected_folder() is not None and getattr(self, "_enabled", False)
        self.rescan_button.setEnabled(has)
        self.remove_button.setEnabled(has)

    def _emit_for_selected(self, signal) -> None:
        folder = self.selected_folder()
        if folder:
            signal.emit(folder)
