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

# Offline and private: ONNX Runtime 1.32 writes a device id and usage events under
# ~/.cache/Microsoft/DeveloperTools on import unless told not to (it reads this when its native
# module loads), and Ray reports usage statistics unless this is 0. Forced, not defaulted: the
# program's promise is that nothing about its use leaves or is kept outside the data folder.
os.environ["ORT_DISABLE_TELEMETRY"] = "1"
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
