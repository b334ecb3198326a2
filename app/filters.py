"""Attribute filters built from the model's attribute schema: one combo per attribute (any, or one
value) and the minimum confidence a model-predicted value needs to count."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QComboBox, QFormLayout, QHBoxLayout, QLabel, QPushButton, QSlider, QVBoxLayout, QWidget

ANY = "any"


class FilterPanel(QWidget):
    changed = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.combos: dict[str, QComboBox] = {}
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        self.note = QLabel("This model predicts no attributes: filters match values set by hand or imported.")
        self.note.setWordWrap(True)
        self.note.hide()
        layout.addWidget(self.note)
        self.form = QFormLayout()
        self.form.setFieldGrowthPolicy(QFormLayout.AllNonFixedFieldsGrow)
        layout.addLayout(self.form)
        self.empty_label = QLabel("Filters appear when the model is loaded.")
        self.empty_label.setWordWrap(True)
        self.form.addRow(self.empty_label)

        self.confidence = QSlider(Qt.Horizontal)
        self.confidence.setRange(0, 100)
        self.confidence.setValue(50)
        self.confidence.setToolTip(
            "Model-predicted attribute values count only at this confidence or above; "
            "values set by hand or imported always count."
        )
        self.confidence_label = QLabel()
        confidence_row = QHBoxLayout()
        confidence_row.addWidget(self.confidence, 1)
        confidence_row.addWidget(self.confidence_label)
        layout.addWidget(QLabel("Minimum confidence of predicted values"))
        layout.addLayout(confidence_row)
        self.reset_button = QPushButton("Reset filters")
        self.reset_button.clicked.connect(self.reset)
        layout.addWidget(self.reset_button)
        layout.addStretch(1)
        self._update_confidence_label()
        self.confidence.valueChanged.connect(self._confidence_moved)
        self.legend = QLabel("<b>bold</b>: set by hand or imported · <i>~value 70%</i>: predicted by the model")
        self.legend.setWordWrap(True)
        layout.addWidget(self.legend)

    def set_schema(self, schema, predicted: bool = True) -> None:
        """Rebuild the combos for ``schema`` (a core AttributeSchema); the filters are reset.
        ``predicted``: whether the model predicts these attributes (else only manual or imported
        values can match, and the user is told so)."""
        while self.form.rowCount():
            self.form.removeRow(0)
        self.combos.clear()
        self.note.setVisible(not predicted and bool(schema.attributes))
        for spec in schema.attributes:
            combo = QComboBox()
            combo.addItem(ANY, None)
            for value in spec.values:
                combo.addItem(value, value)
            combo.setAccessibleName(f"Filter {spec.name}")
            combo.currentIndexChanged.connect(self._combo_changed)
            self.combos[spec.name] = combo
            self.form.addRow(spec.name.replace("_", " "), combo)
        if not self.combos:
            self.form.addRow(QLabel("This model has no attributes."))

    def where(self) -> dict[str, str]:
        return {name: combo.currentData() for name, combo in self.combos.items() if combo.currentData() is not None}

    def min_confidence(self) -> float:
        return self.confidence.value() / 100.0

    def set_filter(self, name: str, value: str | None) -> None:
        combo = self.combos[name]
        index = combo.findData(value) if value is not None else 0
        if index < 0:
            raise ValueError(f"no value '{value}' for attribute '{name}'")
        combo.setCurrentIndex(index)

    def reset(self) -> None:
        changed = False
        for combo in self.combos.values():
            if combo.currentIndex() != 0:
                combo.blockSignals(True)
                combo.setCurrentIndex(0)
                combo.blockSignals(False)
                changed = True
        if changed:
            self.changed.emit()

    def _combo_changed(self, _index: int) -> None:
        self.changed.emit()

    def _update_confidence_label(self) -> None:
        self.confidence_label.setText(f"{self.confidence.value()}%")

    def _confidence_moved(self, _value: int) -> None:
        self._update_confidence_label()
        if self.where():  # the threshold only matters while some filter is set
            self.changed.emit()
