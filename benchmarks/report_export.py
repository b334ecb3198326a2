"""The case report's export alone, on a data folder kept by ``casework_recording --keep DIR``:

    python -m benchmarks.report_export DIR [--case BENCH-1] [--repeat 1]

It reads nothing of this program but ``Workspace`` and ``desk.export_case_report``, so the same
file times an earlier version too: run it with that version's source first on the path
(``PYTHONPATH=OLD_SOURCE python benchmarks/report_export.py DIR``), alternating with this one on
one folder, for figures taken at the same load. The model is loaded before the clock starts, as
in the window and in casework_recording."""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import core.workspace
from core.common.paths import default_model_dir
from core.model.loading import load_model
from core.workspace import Workspace


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kept", type=Path, help="the folder casework_recording --keep wrote")
    parser.add_argument("--case", default="BENCH-1")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    model = load_model(default_model_dir(), "cpu")
    workspace = Workspace(args.kept / "data", model=model, audit_key_file=args.kept / "audit.key", create=False)
    try:
        with tempfile.TemporaryDirectory() as out:
            for _ in range(args.repeat):
                start = time.perf_counter()
                pdf = workspace.desk.export_case_report(args.case, Path(out) / "case.pdf")
                seconds = time.perf_counter() - start
                print(
                    f"export {seconds:6.2f} s  {pdf.stat().st_size / 1e6:.1f} MB  "
                    f"load average {os.getloadavg()[0]:.1f}  (source {Path(core.workspace.__file__).parents[1]})",
                    flush=True,
                )
    finally:
        workspace.close()


if __name__ == "__main__":
    main()
