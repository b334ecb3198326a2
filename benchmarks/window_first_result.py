"""From launch to the first ranked result in the window: a new process opens the main window on an
existing gallery, a figure is drawn on the canvas as soon as the gallery is open, and the time is
taken when the first candidates are listed (what an investigator waits for after starting the app).

    python -m benchmarks.window_first_result [--runs 5] [--photos 20] [--synthetic 0]

Times are taken from outside the process (its start to each line it prints), on Qt's offscreen
platform. ``--synthetic N`` adds N catalogued photos with random embeddings (as
benchmarks.cli_startup does). Target (issue #26): the first result under 3 s after launch, cold,
on 2 cores."""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 3.0
STAGES = ("window shown", "gallery open", "first result")

CHILD = """
import sys, time
from pathlib import Path
from PySide6.QtCore import QSettings
from app.gui import create_application
from app.main_window import LaunchOptions, MainWindow
from app.self_test import figure_strokes

def wait(app, condition):
    deadline = time.monotonic() + 300
    while not condition():
        if time.monotonic() > deadline:
            sys.exit("timed out")
        app.processEvents()
        time.sleep(0.002)

app = create_application()
settings = QSettings(sys.argv[2], QSettings.IniFormat)
window = MainWindow(LaunchOptions(Path(sys.argv[1])), settings)
window.show()
app.processEvents()
print("window shown", flush=True)
wait(app, lambda: window.workspace is not None or window.last_error)
print("gallery open", flush=True)
for stroke in figure_strokes(window.document.width, window.document.height):
    window.document.add_stroke(stroke)
wait(app, lambda: window.candidates.rowCount() > 0 or window.last_error)
print("first result" if window.candidates.rowCount() else f"error {window.last_error}", flush=True)
window.document.clear()
window.close()
"""


def time_launch(data_dir: Path, settings: Path) -> dict[str, float]:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": str(ROOT), "SKETCHSEARCH_DEVICE": "cpu"}
    start = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(data_dir), str(settings)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    stamps = {}
    for line in process.stdout:
        for stage in STAGES:
            if line.startswith(stage):
                stamps[stage] = time.perf_counter() - start
        if line.startswith("error"):
            raise SystemExit(line.strip())
    process.wait()
    if set(stamps) != set(STAGES):
        raise SystemExit(f"the window did not reach every stage (exit {process.returncode}): {stamps}")
    return stamps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--photos", type=int, default=20, help="photos imported into the gallery")
    parser.add_argument("--synthetic", type=int, default=0, help="synthetic photos added to the gallery")
    args = parser.parse_args()
    from app.self_test import write_figures
    from benchmarks.cli_startup import add_synthetic
    from core.workspace import Workspace

    with tempfile.TemporaryDirectory(prefix="sketchsearch-window-") as tmp:
        data = Path(tmp) / "data"
        gallery = write_figures(Path(tmp) / "gallery", args.photos)
        with Workspace(data) as workspace:
            workspace.import_paths([gallery[0].parent])
        if args.synthetic:
            add_synthetic(data, args.synthetic)
        runs = [time_launch(data, Path(tmp) / "settings.ini") for _ in range(args.runs)]
    print(f"gallery        {args.photos + args.synthetic} photos ({args.synthetic} synthetic); {args.runs} runs")
    print(f"load average   {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for stage in STAGES:
        times = [run[stage] for run in runs]
        print(f"{stage:14s} median {statistics.median(times):5.2f} s  (runs: {', '.join(f'{t:.2f}' for t in times)})")
    first = statistics.median(run["first result"] for run in runs)
    print(f"first result / target {TARGET_S:.0f} s: ratio {first / TARGET_S:.2f}")


if __name__ == "__main__":
    main()
