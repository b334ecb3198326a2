"""The window's status bar: beside the passing messages, what searches run against right now: the
case they are recorded under, the model, the device and runtime it runs on, and the gallery."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QLabel, QStatusBar, QWidget

from core.casework.records import CaseInfo

RUNTIME_NAMES = {"onnxruntime": "ONNX Runtime", "torch": "PyTorch"}
LOADING_MODEL = "Loading model…"


def model_kind(provenance: dict) -> tuple[str, str]:
    """What the manifest says the model is, in a word or two and its detail:
    "trained (IHDA-style …)" -> ("trained", "IHDA-style …")."""
    kind = str(provenance.get("kind") or ("trained" if provenance.get("data") else ""))
    head, _, detail = kind.partition(" (")
    return head.strip(), detail.removesuffix(")").strip()


def describe_model(info) -> str:
    head, _ = model_kind(info.provenance or {})
    return info.name + (f" ({head})" if head else "")


def model_tooltip(info) -> str:
    """The model's name, what it is, and the manifest's plain facts (its nested records are in About)."""
    provenance = info.provenance or {}
    head, detail = model_kind(provenance)
    lines = [info.name, f"{head}: {detail}" if detail else head]
    lines += [
        f"{k}: {v}" for k, v in provenance.items() if k not in ("kind", "command") and isinstance(v, (str, int, float))
    ]
    return "\n".join([line for line in lines if line] + [f"sha256: {info.sha256}"])


def describe_device(device: str) -> str:
    return "GPU" + (f" ({device})" if device != "cuda" else "") if device.startswith("cuda") else "CPU"


class WindowStatusBar(QStatusBar):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.model_label = QLabel(LOADING_MODEL)
        self.device_label = QLabel("")
        self.gallery_label = QLabel("")
        self.case_label = QLabel("")
        self.show_case(None)
        for label in (self.case_label, self.model_label, self.device_label, self.gallery_label):
            label.setContentsMargins(6, 0, 6, 0)
            self.addPermanentWidget(label)

    def fits(self, text: str) -> bool:
        """Does ``text`` show whole beside the permanent labels?"""
        labels = (self.case_label, self.model_label, self.device_label, self.gallery_label)
        room = self.width() - sum(label.width() for label in labels) - 24  # the size grip and spacing
        return self.fontMetrics().horizontalAdvance(text) <= room

    def show_model_loading(self) -> None:
        self.model_label.setText(LOADING_MODEL)

    def show_no_model(self) -> None:
        self.model_label.setText("No model loaded")

    def show_model(self, info) -> None:
        self.model_label.setText(f"Model: {describe_model(info)}")
        self.model_label.setToolTip(model_tooltip(info))
        runtime = RUNTIME_NAMES.get(info.runtime)
        self.device_label.setText(describe_device(info.device) + (f" · {runtime}" if runtime else ""))

    def show_gallery(self, stats, data_dir: Path | None, read_only: str = "") -> None:
        """``read_only``: why this window changes nothing in the gallery ("" when it may)."""
        text = f"Gallery: {stats.photos} photo(s)"
        if stats.missing:
            text += f", {stats.missing} missing"
        self.gallery_label.setText(text + (" · read-only" if read_only else ""))
        tooltip = f"{stats.indexed} indexed · data folder {data_dir}" if data_dir else ""
        self.gallery_label.setToolTip("\n\n".join(t for t in (tooltip, read_only) if t))

    def show_case(self, case: CaseInfo | None) -> None:
        if case is None:
            self.case_label.setText("No case")
            self.case_label.setToolTip("Searches are recorded under 'no case'. Case → New case… or Open case…")
        else:
            self.case_label.setText(f"Case {case.number}")
            self.case_label.setToolTip(
                f"{case.title}\noperator {case.operator}\nopened {case.opened_at:%Y-%m-%d %H:%M}"
            )
