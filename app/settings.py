"""Persistent preferences (QSettings): data folder, device, top K; the case open in each data
folder; the folder each kind of file dialog used last; and the dialog that edits them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QSettings, QStandardPaths
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QWidget,
)

DEVICES = ("auto", "cpu", "cuda")
DEFAULT_TOP_K = 50
MAX_TOP_K = 1000
DEFAULT_REPORT_TOP = 10  # candidates a case report lists per search besides every reviewed one
OPEN_CASES_KEY = "casework/open_cases"  # JSON: data folder -> the number of the case open in it


def _open_cases(settings: QSettings) -> dict[str, str]:
    try:
        cases = json.loads(str(settings.value(OPEN_CASES_KEY, "") or "{}"))
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in cases.items()} if isinstance(cases, dict) else {}


def _folder_key(data_dir: Path) -> str:
    return str(Path(data_dir).resolve())


def remembered_case(settings: QSettings, data_dir: Path) -> str | None:
    """The number of the case that was open in ``data_dir`` when the window last worked on it."""
    return _open_cases(settings).get(_folder_key(data_dir))


def remember_case(settings: QSettings, data_dir: Path, number: str | None) -> None:
    """Open ``number`` again at the next start on ``data_dir`` (None: start with no case)."""
    cases = _open_cases(settings)
    if number:
        cases[_folder_key(data_dir)] = number
    else:
        cases.pop(_folder_key(data_dir), None)
    settings.setValue(OPEN_CASES_KEY, json.dumps(cases, sort_keys=True))
    settings.sync()


# The kinds of file a dialog opens or saves: each opens in the folder last used for its own kind,
# so that a scan read from one place does not decide where sketches or reports are saved.
SKETCHES, SCANS, REPORTS, PHOTO_FOLDERS, ATTRIBUTE_SHEETS = "sketch", "scan", "report", "photos", "attributes"
VIDEOS = "video"


def default_folder() -> str:
    """The user's documents folder, else home: never the folder the program was started in."""
    documents = QStandardPaths.writableLocation(QStandardPaths.DocumentsLocation)
    return documents if documents and Path(documents).is_dir() else str(Path.home())


def last_folder(settings: QSettings, kind: str) -> str:
    """The folder a dialog of this kind last opened from or saved in (if it is still there)."""
    last = str(settings.value(f"{kind}/folder", "") or "")
    return last if last and Path(last).is_dir() else default_folder()


def remember_folder(settings: QSettings, kind: str, chosen: str | Path) -> None:
    """Remember the folder of the file chosen (of the folder chosen: beside it, for its siblings)."""
    settings.setValue(f"{kind}/folder", str(Path(chosen).resolve().parent))


@dataclass
class Preferences:
    data_dir: str = ""  # empty: the default data folder
    device: str = "auto"
    top_k: int = DEFAULT_TOP_K
    report_top: int = DEFAULT_REPORT_TOP

    @classmethod
    def load(cls, settings: QSettings) -> Preferences:
        device = str(settings.value("device", "auto"))
        try:
            top_k = int(settings.value("top_k", DEFAULT_TOP_K))
        except (TypeError, ValueError):
            top_k = DEFAULT_TOP_K
        try:
            report_top = int(settings.value("report_top", DEFAULT_REPORT_TOP))
        except (TypeError, ValueError):
            report_top = DEFAULT_REPORT_TOP
        return cls(
            data_dir=str(settings.value("data_dir", "") or ""),
            device=device if device in DEVICES else "auto",
            top_k=max(1, min(MAX_TOP_K, top_k)),
            report_top=max(1, min(MAX_TOP_K, report_top)),
        )

    def save(self, settings: QSettings) -> None:
        settings.setValue("data_dir", self.data_dir)
        settings.setValue("device", self.device)
        settings.setValue("top_k", self.top_k)
        settings.setValue("report_top", self.report_top)
        settings.sync()


class SettingsDialog(QDialog):
    def __init__(
        self,
        preferences: Preferences,
        default_data_dir: Path,
        parent: QWidget | None = None,
        *,
        in_use: Path | None = None,
        in_use_origin: str = "",
        operator: str | None = None,
    ):
        """``in_use``: the data folder open now (from --data-dir, the saved setting or the default),
        shown as it is; leaving it unchanged keeps the saved setting as it was."""
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self._saved = preferences
        self._in_use = str(in_use) if in_use is not None else preferences.data_dir
        self.data_dir = QLineEdit(self._in_use)
        self.data_dir.setPlaceholderText(str(default_data_dir))
        self.data_dir.setAccessibleName("Data folder")
        self.in_use_note = QLabel(f"In use now ({in_use_origin})." if in_use_origin else "")
        self.in_use_note.setToolTip(f"Default: {default_data_dir}")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        data_row = QHBoxLayout()
        data_row.addWidget(self.data_dir, 1)
        data_row.addWidget(browse)
        self.device = QComboBox()
        self.device.addItems(DEVICES)
        self.device.setCurrentText(preferences.device)
        self.top_k = QSpinBox()
        self.top_k.setRange(1, MAX_TOP_K)
        self.top_k.setValue(preferences.top_k)
        form = QFormLayout(self)
        form.addRow("Data folder", data_row)
        form.addRow("", self.in_use_note)
        form.addRow("Device", self.device)
        form.addRow("Candidates (top K)", self.top_k)
        self.report_top = QSpinBox()
        self.report_top.setRange(1, MAX_TOP_K)
        self.report_top.setValue(preferences.report_top)
        self.report_top.setToolTip("A case report lists each search's top N candidates and every reviewed one")
        form.addRow("Report: top N per search", self.report_top)
        self.operator = QLineEdit(operator or "")
        self.operator.setEnabled(operator is not None)  # kept in the data folder: none open, none to set
        self.operator.setToolTip(
            "Recorded with every search, review and report, beside the OS account; kept in the data folder, so "
            "the command line uses it too (--operator or SKETCHSEARCH_OPERATOR override it there)"
        )
        form.addRow("Operator", self.operator)
        note = QLabel("A new data folder or device takes effect at once (the gallery is reopened).")
        note.setWordWrap(True)
        form.addRow(note)
        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Data folder", self.data_dir.text() or str(Path.home()))
        if folder:
            self.data_dir.setText(folder)

    def preferences(self) -> Preferences:
        chosen = self.data_dir.text().strip()
        # the folder in use, left as it was, is no new choice (a --data-dir is not saved as one)
        data_dir = self._saved.data_dir if chosen == self._in_use else chosen
        return Preferences(data_dir, self.device.currentText(), self.top_k.value(), self.report_top.value())
