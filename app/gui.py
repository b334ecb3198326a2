"""Starting the desktop application: the QApplication, logging, a last-resort error dialog, the
main window."""

from __future__ import annotations

import logging
import os
import sys
import traceback

log = logging.getLogger("app")


def no_display() -> str | None:
    """Why the window cannot be shown here, or None. Without a display (over ssh, say) Qt would
    open an invisible window and sit silent; QT_QPA_PLATFORM=offscreen still asks for that on
    purpose (tests, the self-test)."""
    if not sys.platform.startswith("linux") or os.environ.get("QT_QPA_PLATFORM"):
        return None
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return None
    return (
        "no display to show the window on (neither DISPLAY nor WAYLAND_DISPLAY is set); "
        "the commands work without one: sketchsearch --help"
    )


def create_application(argv: list[str] | None = None):
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    if app is None:
        app = QApplication([sys.argv[0] if sys.argv else "sketchsearch", *(argv or [])])
    install_message_filter()
    app.setOrganizationName("SketchSearch")
    app.setApplicationName("SketchSearch")
    app.setApplicationDisplayName("SketchSearch")
    return app


_NOISE = ("propagateSizeHints",)  # harmless platform-plugin chatter


def install_message_filter() -> None:
    """Route Qt's messages to logging, dropping known noise of the offscreen platform."""
    from PySide6.QtCore import QtMsgType, qInstallMessageHandler

    levels = {
        QtMsgType.QtDebugMsg: logging.DEBUG,
        QtMsgType.QtInfoMsg: logging.INFO,
        QtMsgType.QtWarningMsg: logging.WARNING,
        QtMsgType.QtCriticalMsg: logging.ERROR,
        QtMsgType.QtFatalMsg: logging.CRITICAL,
    }

    def handler(kind, _context, message):
        if not any(noise in message for noise in _NOISE):
            logging.getLogger("qt").log(levels.get(kind, logging.WARNING), "%s", message)

    qInstallMessageHandler(handler)


def install_excepthook() -> None:
    """An unexpected error in a slot becomes a message box (and a log entry), not a silent traceback."""
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QApplication, QMessageBox

    def hook(kind, value, tb):
        log.error("unexpected error:\n%s", "".join(traceback.format_exception(kind, value, tb)))
        if QApplication.instance() is not None and not isinstance(value, KeyboardInterrupt):
            box = QMessageBox(
                QMessageBox.Critical,
                "SketchSearch",
                f"Something went wrong: {kind.__name__}: {value}\n\nThe window keeps working; details are in the log.",
            )
            box.setAttribute(Qt.WA_DeleteOnClose)
            box.open()

    sys.excepthook = hook


def run_gui(args) -> int:
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    problem = no_display()
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    app = create_application()
    install_excepthook()
    from app.main_window import LaunchOptions, MainWindow

    window = MainWindow(LaunchOptions(args.data_dir, args.model, args.device))
    window.show()
    stop_on_signals(app, window)
    code = app.exec()
    if window.runner.active():
        # cancelled work is still running (an import batch, a model load): quit now rather than wait;
        # the catalogue and index survive this as they survive a kill -9 (committed batches, atomic files)
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def stop_on_signals(app, window) -> None:
    """Ctrl+C or SIGTERM closes the window properly (workers stopped, catalogue closed)."""
    import signal

    from PySide6.QtCore import QTimer

    def stop(*_args):
        window.close()
        app.quit()

    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, stop)
    timer = QTimer(app)  # lets the interpreter run its signal handlers while Qt's loop waits
    timer.timeout.connect(lambda: None)
    timer.start(300)
