"""``sketchsearch``: with a sub-command, the headless command line (``core.cli``); without one, the GUI."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    from core.cli import COMMANDS

    if any(arg in COMMANDS for arg in argv) or argv[:1] in (["-h"], ["--help"]):
        from core.cli import main as cli_main

        return cli_main(argv)
    from app.gui import run_gui  # Qt is imported only on this path

    return run_gui(argv)


if __name__ == "__main__":
    sys.exit(main())
