"""``sketchsearch``: with a sub-command, the headless command line (``core.cli``); without one, the
desktop application. Qt is imported only on the GUI path, so the sub-commands run without it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.cli.parser import COMMANDS as HEADLESS_COMMANDS  # light: torch loads only when a command runs
from core.cli.parser import EXIT_ERROR, Parser
from core.common import environment
from core.common.errors import SketchSearchError

_OPTIONS_WITH_VALUE = ("--data-dir", "--model", "--device")


def first_positional(argv: list[str]) -> str | None:
    """The first argument that is not a global option or an option's value."""
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in _OPTIONS_WITH_VALUE:
            skip = True
            continue
        if arg.startswith("-"):
            continue
        return arg
    return None


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="sketchsearch",
        description="Search a photo gallery with a sketch. Without a command, the desktop application starts.",
        epilog="Headless commands (see 'sketchsearch COMMAND --help'): " + ", ".join(HEADLESS_COMMANDS),
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="catalogue and index folder (default: the saved setting, else the user data folder)",
    )
    parser.add_argument("--model", type=Path, help="model folder (default: the bundled model)")
    parser.add_argument(
        "--device", choices=("auto", "cpu", "cuda"), help="where the model runs (default: the saved setting, else auto)"
    )
    parser.add_argument(
        "--self-test",
        action="store_true",
        help="open the window offscreen, search a small generated gallery, exit 0 if all works",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log details to stderr")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if first_positional(argv) is not None:  # a command (the window takes none): a mistyped one is said there
        from core.cli.commands import main as cli_main

        return cli_main(argv)
    args = build_parser().parse_strictly(argv)  # exits on --help or a bad option, before Qt loads
    try:
        environment.check()  # a bad SKETCHSEARCH_* setting is said here, not by a window that fails later
    except SketchSearchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    if args.self_test:
        from app.self_test import run_self_test

        return run_self_test(args)
    from app.gui import run_gui  # Qt is imported only on this path

    return run_gui(args)


if __name__ == "__main__":
    sys.exit(main())
