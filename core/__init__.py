"""SketchSearch core: model inference, photo catalogue, vector index and search.

Nothing in this package imports Qt or ``app``; the GUI and the command line are thin views over it.
"""
