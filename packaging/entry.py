"""Entry point of the frozen SketchSearch executable (PyInstaller runs this file as __main__)."""

import multiprocessing
import sys

from app.main import main

if __name__ == "__main__":
    multiprocessing.freeze_support()
    sys.exit(main())
