"""Training for SketchSearch models (IHDA-style sketch/photo domain adaptation). Imports ``core``,
never ``app``."""
