"""Help -> About: what this program and its model are, and on what terms the model may be used."""

from __future__ import annotations

from html import escape

from PySide6.QtWidgets import QMessageBox, QWidget

from core.common.types import ModelInfo
from core.common.version import app_version


def about_html(info: ModelInfo | None) -> str:
    """The About box's text. Everything about the model comes from its manifest."""
    parts = [
        f"<h3>SketchSearch {escape(app_version())}</h3>",
        "<p>Ranks gallery photos by their likeness to a sketch. The candidates are investigative leads "
        "for a person to review, never an identification.</p>",
    ]
    if info is None:
        parts.append("<p>The model is still loading.</p>")
        return "".join(parts)
    metrics = (info.provenance or {}).get("metrics") or {}
    test = metrics.get("test") or {}
    rows = [
        ("Model", info.name),
        ("Weights sha256", info.sha256),
        ("Trained", (info.provenance or {}).get("kind", "not recorded")),
        ("Licence", info.licence or "not stated in the manifest"),
        ("Training data terms", info.data_terms or "not stated in the manifest"),
    ]
    if test:
        split = (info.provenance or {}).get("split", "?")
        rows.append(
            (
                "Measured",
                f"sketch → photo R1 {test.get('R1', float('nan')):.1f}, mAP {test.get('mAP', float('nan')):.1f} "
                f"on the test people of {split} (from the manifest)",
            )
        )
    parts.append("<table>")
    parts += [f"<tr><td><b>{escape(k)}</b>&nbsp;</td><td>{escape(str(v))}</td></tr>" for k, v in rows]
    parts.append("</table>")
    return "".join(parts)


def show_about(parent: QWidget, info: ModelInfo | None) -> QMessageBox:
    box = QMessageBox(QMessageBox.Information, "About SketchSearch", about_html(info), QMessageBox.Ok, parent)
    box.setObjectName("about-box")
    box.open()
    return box
