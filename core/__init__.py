"""SketchSearch core: model inference, photo catalogue, vector index and search.

Nothing in this package imports Qt or ``app``; the GUI and the command line are thin views over it.
"""

import os

# OpenMP threads that spin while they wait are fast on an idle machine and disastrous on a busy one:
# with the GUI, an import's decoding threads or any other program on the same cores, a network
# forward pass of one sketch was measured going from 30 ms to 2 s. Threads that sleep cost little
# when idle and keep that from happening. Set before torch or FAISS load their OpenMP runtime; a
# value the user set wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
