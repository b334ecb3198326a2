"""The window's actions and where they appear: the menu bar (File, Case, Edit, View, Model, Help)
and the sketch toolbar. Drawing actions act on the canvas and its document here; the window
connects every other action to the controller that does its work."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QMainWindow, QSpinBox, QToolBar

from app.canvas import SketchCanvas
from app.strokes import SketchDocument
from core.model.loading import installed

# adaptation trains with torch; the CPU package runs the model on ONNX Runtime and carries no torch
TRAINING_INSTALLED = installed("torch")


class WindowMenus:
    def __init__(self, window: QMainWindow, document: SketchDocument, canvas: SketchCanvas):
        self.window = window
        self.canvas = canvas
        self._build_command_actions()
        self._build_drawing_actions(document)
        self._build_menu_bar(window.menuBar())
        self.toolbar = self._build_toolbar()

    def _action(self, text: str, shortcut=None, tip: str = "", slot=None) -> QAction:
        action = QAction(text, self.window)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        if tip:
            action.setStatusTip(tip)
            action.setToolTip(f"{text.replace('…', '').replace('&', '')} — {tip}")
        if slot is not None:
            action.triggered.connect(slot)
        return action

    def _build_command_actions(self) -> None:
        """File, Case, Model and Help actions: the window connects each to the slot that does its work."""
        action = self._action
        self.open_sketch_action = action("&Open sketch…", "Ctrl+Shift+O", "open a sketch saved by SketchSearch")
        self.import_sketch_action = action(
            "&Import scanned sketch…", "Ctrl+O", "a scan or photo of a paper sketch becomes the background"
        )
        self.save_sketch_action = action(
            "&Save sketch…", QKeySequence.Save, "save the strokes (.json) and a picture (.png)"
        )
        self.import_folder_action = action("Import &folder…", "Ctrl+I", "add the photos in a folder to the gallery")
        self.import_video_action = action(
            "Import &video…", tip="find the people in video files and add one photo of each person followed"
        )
        self.import_attributes_action = action(
            "Import &attributes…", tip="read attribute values from a CSV sheet keyed by path, file name or person id"
        )
        self.settings_action = action("Se&ttings…")
        self.about_action = action("&About SketchSearch…")
        self.quit_action = action("&Quit", QKeySequence.Quit)
        self.compare_action = action("&Compare selected", "Return")
        self.possible_action = action("Mark as &possible lead", "P", "recorded with your name")
        self.exclude_action = action("Mark as e&xcluded", "X", "looked at and ruled out")
        self.clear_mark_action = action("C&lear mark", "U", "back to not reviewed")
        self.note_mark_action = action("Mark with a &note…")
        self.review_actions = [self.possible_action, self.exclude_action, self.clear_mark_action, self.note_mark_action]
        self.new_case_action = action("&New case…", "Ctrl+Shift+N", "start a case")
        self.open_case_action = action("&Open case…", None, "work in a case")
        self.close_case_action = action("&Close case", None, "searches go under no case")
        self.export_report_action = action("&Export report…", "Ctrl+Shift+E", "the case's searches and marks as PDF")
        self.export_audit_action = action(
            "Export audit &log…", tip="every recorded action of this gallery as one JSON file, verified as written"
        )
        self.adapt_action = action(
            "&Adapt to this gallery…",
            tip="train a copy of the model on this gallery, no labels"
            if TRAINING_INSTALLED
            else "adaptation trains the network with torch, which this package leaves out: "
            "use the GPU package (sketchsearch-gpu) or the source install",
        )
        self.use_model_action = action("&Use…", tip="switch to another installed model")

    def _build_drawing_actions(self, document: SketchDocument) -> None:
        """Undo, the tools, the brush and the zoom: they act on the canvas and its document."""
        action, canvas = self._action, self.canvas
        self.undo_action = document.undo_stack.createUndoAction(self.window, "&Undo")
        self.undo_action.setShortcut(QKeySequence("Ctrl+Z"))
        self.redo_action = document.undo_stack.createRedoAction(self.window, "&Redo")
        self.redo_action.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
        self.clear_action = action("C&lear sketch", "Ctrl+Backspace", "start afresh", document.clear)
        self.pen_action = action("&Pen", "B", "draw", lambda: canvas.set_tool("pen"))
        self.eraser_action = action("&Eraser", "E", "erase strokes", lambda: canvas.set_tool("eraser"))
        tools = QActionGroup(self.window)
        for tool in (self.pen_action, self.eraser_action):
            tool.setCheckable(True)
            tools.addAction(tool)
        self.pen_action.setChecked(True)
        canvas.toolChanged.connect(self._tool_changed)
        self.bigger_action = action("&Bigger brush", "]", slot=canvas.grow_pen)
        self.smaller_action = action("&Smaller brush", "[", slot=canvas.shrink_pen)
        self.zoom_in_action = action("Zoom &in", QKeySequence.ZoomIn, slot=lambda: canvas.zoom_by(1.25))
        self.zoom_out_action = action("Zoom &out", QKeySequence.ZoomOut, slot=lambda: canvas.zoom_by(0.8))
        self.fit_action = action("&Fit sketch", "Ctrl+0", slot=canvas.fit)

    def _tool_changed(self, tool: str) -> None:
        (self.pen_action if tool == "pen" else self.eraser_action).setChecked(True)

    def _build_menu_bar(self, bar) -> None:
        menu = bar.addMenu("&File")
        for action in (self.open_sketch_action, self.import_sketch_action, self.save_sketch_action):
            menu.addAction(action)
        menu.addSeparator()
        menu.addAction(self.import_folder_action)
        menu.addAction(self.import_video_action)
        menu.addAction(self.import_attributes_action)
        menu.addSeparator()
        menu.addAction(self.settings_action)
        menu.addSeparator()
        menu.addAction(self.quit_action)
        menu = bar.addMenu("&Case")
        for action in (self.new_case_action, self.open_case_action, self.close_case_action):
            menu.addAction(action)
        menu.addSeparator()
        menu.addAction(self.export_report_action)
        menu.addAction(self.export_audit_action)
        menu.addSeparator()
        for action in self.review_actions:
            menu.addAction(action)
        menu = bar.addMenu("&Edit")
        for action in (self.undo_action, self.redo_action, self.clear_action):
            menu.addAction(action)
        menu.addSeparator()
        for action in (self.pen_action, self.eraser_action, self.bigger_action, self.smaller_action):
            menu.addAction(action)
        self.view_menu = bar.addMenu("&View")  # the window adds its docks' toggles
        for action in (self.zoom_in_action, self.zoom_out_action, self.fit_action):
            self.view_menu.addAction(action)
        self.view_menu.addSeparator()
        menu = bar.addMenu("&Model")
        menu.addAction(self.adapt_action)
        menu.addAction(self.use_model_action)
        bar.addMenu("&Help").addAction(self.about_action)  # last, as on every desktop

    def _build_toolbar(self) -> QToolBar:
        toolbar = QToolBar("Sketch")
        toolbar.setObjectName("sketch-toolbar")  # the window's saved state finds it by this name
        toolbar.setToolButtonStyle(Qt.ToolButtonTextOnly)
        for action in (self.pen_action, self.eraser_action):
            toolbar.addAction(action)
        self.width_spin = QSpinBox()
        self.width_spin.setRange(1, 64)
        self.width_spin.setValue(int(self.canvas.pen_width))
        self.width_spin.setSuffix(" px")
        self.width_spin.setToolTip("Brush size ([ and ])")
        self.width_spin.setAccessibleName("Brush size")
        self.canvas.penWidthChanged.connect(lambda w: self.width_spin.setValue(round(w)))
        self.width_spin.valueChanged.connect(lambda v: self.canvas.set_pen_width(v))
        toolbar.addWidget(self.width_spin)
        toolbar.addSeparator()
        for action in (self.undo_action, self.redo_action, self.clear_action):
            toolbar.addAction(action)
        toolbar.addSeparator()
        for action in (self.import_sketch_action, self.save_sketch_action, self.import_folder_action):
            toolbar.addAction(action)
        return toolbar

    def set_workspace_open(self, is_open: bool) -> None:
        """The actions that need a gallery wait until one is open."""
        for action in (
            self.new_case_action,
            self.open_case_action,
            self.export_audit_action,
            self.import_folder_action,
            self.import_video_action,
            self.import_attributes_action,
            self.use_model_action,
        ):
            action.setEnabled(is_open)
        self.adapt_action.setEnabled(is_open and TRAINING_INSTALLED)

    def set_case_open(self, is_open: bool) -> None:
        self.close_case_action.setEnabled(is_open)
        self.export_report_action.setEnabled(is_open)
