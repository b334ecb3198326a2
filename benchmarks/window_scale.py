"""Opening the window on a gallery of a million photos: from ``MainWindow`` to shown, to the
workspace ready (catalogue opened, index loaded and checked, network loaded) and to usable (the
gallery's statistics, folders and unindexed count shown), then the first searches; then each step
of opening again, timed alone (``--profile``: where their time goes).

    python -m benchmarks.window_scale [--photos 1000000] [--folder DIR] [--profile] [--rebuild]

The gallery is the catalogue ``benchmarks.catalogue_scale`` writes (written under the bundled
model's key, with its index trained and saved), so it opens as a real one. ``--folder`` keeps it
there and reuses it on later runs (writing a million photos and training their index takes minutes);
without it a temporary folder is used. The page cache is warm (the gallery was just written, or
read by an earlier run). ``--rebuild`` also times opening with the index file gone (rebuilt from
the stored embeddings at opening). Qt runs offscreen; the machine was shared with other work while
measuring: times are upper bounds."""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import io
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from core.catalogue.catalogue import Catalogue
from core.common.paths import default_model_dir
from core.index.rebuild import build_from_catalogue
from core.index.service import unit_rows
from core.index.vectors import DEFAULT_POLICY
from core.model.manifest import verified_manifest
from core.workspace import Workspace


def prepare(data_dir: Path, photos: int, thumbnail_bytes: int) -> None:
    """Write the gallery and its index, unless an earlier run left them in ``data_dir``."""
    manifest = verified_manifest(default_model_dir())
    index_path = data_dir / "index" / f"{manifest.embedding_key[:16]}.faiss"
    if (data_dir / Catalogue.FILE_NAME).exists() and index_path.exists():
        catalogue = Catalogue(data_dir, create=False)
        found = catalogue.count_photos()
        catalogue.close()
        if found != photos:
            raise SystemExit(f"{data_dir} holds {found} photos, not {photos}: give another --folder")
        print(f"gallery     {found} photos in {data_dir} (written by an earlier run)")
        return
    from benchmarks.catalogue_scale import fill  # imports torch (through checkpoint): only when writing

    catalogue = Catalogue(data_dir)
    start = time.perf_counter()
    fill(catalogue, photos, thumbnail_bytes, manifest.attribute_schema, key=manifest.embedding_key)
    written = time.perf_counter() - start
    start = time.perf_counter()
    built = build_from_catalogue(catalogue, manifest.embedding_key, manifest.embedding_dim, DEFAULT_POLICY)
    built.index.save(index_path)
    catalogue.close()
    print(
        f"gallery     {photos} photos written in {written:.0f} s, their {built.index.kind} index built "
        f"in {time.perf_counter() - start:.0f} s"
    )


def wait_until(app, condition, timeout: float = 900.0) -> float:
    """Seconds until ``condition()`` holds, running the event loop meanwhile."""
    from PySide6.QtCore import QEventLoop

    start = time.perf_counter()
    while not condition():
        if time.perf_counter() - start > timeout:
            raise SystemExit("the window did not get there in time")
        app.processEvents(QEventLoop.AllEvents, 20)
        time.sleep(0.002)
    return time.perf_counter() - start


def open_window(data_dir: Path, settings_dir: Path) -> tuple[dict[str, float], object, object]:
    """The window as the app opens it: the workspace (and network) open in a worker."""
    from PySide6.QtCore import QSettings

    from app.gui import create_application
    from app.main_window import LaunchOptions, MainWindow

    app = create_application()
    settings = QSettings(str(settings_dir / "settings.ini"), QSettings.IniFormat)
    stamps = {}
    start = time.perf_counter()
    window = MainWindow(LaunchOptions(data_dir=data_dir, device="cpu"), settings)
    window.show()
    app.processEvents()
    stamps["window shown"] = time.perf_counter() - start
    wait_until(app, lambda: window.workspace is not None)
    stamps["workspace ready (catalogue, index, network)"] = time.perf_counter() - start
    wait_until(
        app, lambda: window.status_bar.gallery_label.text().startswith("Gallery: ") and window.runner.active() == 0
    )
    stamps["usable (statistics, folders, unindexed count shown)"] = time.perf_counter() - start
    return stamps, app, window


def timed(label: str, call, rows: list[str], profile: bool):
    profiler = cProfile.Profile() if profile else None
    start = time.perf_counter()
    if profiler:
        profiler.enable()
    value = call()
    if profiler:
        profiler.disable()
    rows.append(f"  {label:58s} {time.perf_counter() - start:8.2f} s")
    if profiler:
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(12)
        rows.append("\n".join("      " + line for line in text.getvalue().splitlines() if line.strip()))
    return value


def steps(data_dir: Path, workspace, profile: bool) -> list[str]:
    """The reads behind opening, again one by one (the network already loaded), and the first searches
    (the attribute table's cache file removed first, so that the first filter reads it whole)."""
    rows: list[str] = []
    model = workspace.models.loaded()
    workspace.attribute_tables.path.unlink(missing_ok=True)
    again = timed(
        "open the workspace (catalogue, index load and check)", lambda: Workspace(data_dir, model=model), rows, profile
    )
    timed("statistics (status bar)", again.stats, rows, profile)
    timed("folder summary (gallery panel)", again.folders, rows, profile)
    timed("photos without an embedding (indexing offered)", again.gallery.count_unembedded, rows, profile)
    rng = np.random.default_rng(1)
    query = rng.standard_normal((1, again.embedding_dim)).astype(np.float32)
    query /= np.linalg.norm(query)
    timed("first search, no filter (K=50)", lambda: again.search_embeddings(query, top_k=50), rows, profile)
    first = again.schema.attributes[0]
    where = {first.name: first.values[0]}
    timed(
        f"first search filtered on {where}: whole read, saved",
        lambda: again.search_embeddings(query, top_k=50, where=where),
        rows,
        profile,
    )
    timed("the same filter again", lambda: again.search_embeddings(query, top_k=50, where=where), rows, profile)
    timed("close (nothing to save)", again.close, rows, profile)

    def reopened(label: str) -> None:
        opened = Workspace(data_dir, model=model)
        timed(label, lambda: opened.search_embeddings(query, top_k=50, where=where), rows, profile)
        timed("  close (the table saved when it changed)", opened.close, rows, profile)

    reopened("first filtered search after reopening, gallery unchanged")
    start = time.perf_counter()
    change_elsewhere(data_dir, 1000, first.name, first.values[-1])
    rows.append(
        f"  {'(1,000 photos given a manual value by another process)':58s} {time.perf_counter() - start:8.2f} s"
    )
    reopened("first filtered search after reopening, 1,000 photos changed")
    return rows


def change_elsewhere(data_dir: Path, photos: int, name: str, value: str) -> None:
    """Another process sets a manual value on ``photos`` photos spread over the gallery, committed
    32 at a time as an import commits its batches."""
    import subprocess

    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from core.catalogue.catalogue import Catalogue\n"
        "from core.common.types import AttributeSource\n"
        "catalogue = Catalogue(Path(sys.argv[1]), create=False)\n"
        "top = catalogue.count_photos()\n"
        "count = int(sys.argv[2])\n"
        "ids = [1 + i * (top // count) for i in range(count)]\n"
        "for start in range(0, count, 32):\n"
        "    rows = [(i, sys.argv[3], sys.argv[4]) for i in ids[start : start + 32]]\n"
        "    catalogue.set_attributes(rows, AttributeSource.MANUAL, 'benchmark')\n"
        "catalogue.close()\n"
    )
    subprocess.run([sys.executable, "-c", script, str(data_dir), str(photos), name, value], check=True)


def previous_unit_rows(vectors: np.ndarray, tolerance: float = 1e-3) -> np.ndarray:
    """The damage check as the previous rebuild ran it, in a pass of its own (norms of a float64
    copy of each chunk), kept here to measure the ratio in one run."""
    with np.errstate(over="ignore", invalid="ignore"):
        norms = np.linalg.norm(vectors.astype(np.float64), axis=1)
    return np.isfinite(norms) & (np.abs(norms - 1.0) <= tolerance)


def rebuild_at_opening(data_dir: Path, workspace) -> list[str]:
    """Opening with the index file gone (rebuilt from the stored embeddings); then the rebuild's
    passes over the embeddings before and after they were folded into one, alternated, with the
    clusters trained on a small sample so that k-means (which varies with the machine's load far
    more than a pass does) stays out of the comparison."""
    rows = []
    model = workspace.models.loaded()
    key, dim, catalogue = model.embedding_key, model.embedding_dim, workspace.catalogue
    index_path = workspace.indexes.path
    kept = index_path.with_suffix(".kept")
    os.replace(index_path, kept)
    try:
        start = time.perf_counter()
        Workspace(data_dir, model=model).close()
        rows.append(
            f"  {'open with the index file gone (rebuilt at opening)':58s} {time.perf_counter() - start:8.2f} s"
        )
    finally:
        os.replace(kept, index_path)  # the index as it was (the rebuilt one is the same gallery's)
    policy = dataclasses.replace(DEFAULT_POLICY, max_training_points=10_000)
    rows.append(
        f"  the rebuild's passes over the stored embeddings (clusters trained on {policy.max_training_points}):"
    )
    for _ in range(2):
        start = time.perf_counter()
        damaged = [ids[~previous_unit_rows(vectors)] for ids, vectors in catalogue.iter_embeddings(key, dim)]
        checked = time.perf_counter() - start
        build_from_catalogue(catalogue, key, dim, policy)
        before = time.perf_counter() - start
        start = time.perf_counter()
        build_from_catalogue(catalogue, key, dim, policy, accept=unit_rows)
        after = time.perf_counter() - start
        assert not sum(len(d) for d in damaged)
        rows.append(
            f"    before: check pass {checked:6.2f} s + build {before - checked:6.2f} s = {before:6.2f} s; "
            f"after: one pass {after:6.2f} s; ratio {before / after:.2f}"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=1_000_000)
    parser.add_argument("--thumbnail-bytes", type=int, default=4000)
    parser.add_argument("--folder", type=Path, default=None, help="keep the gallery here and reuse it")
    parser.add_argument("--profile", action="store_true", help="where each step's time goes (cProfile)")
    parser.add_argument("--rebuild", action="store_true", help="also open with the index file gone")
    args = parser.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = (args.folder or Path(tmp)) / "data"
        prepare(data_dir, args.photos, args.thumbnail_bytes)
        warm = "torch" in sys.modules  # imported while writing the gallery: the window does not import it
        stamps, app, window = open_window(data_dir, Path(tmp))
        print(
            f"the window, from MainWindow() ({os.getloadavg()[0]:.1f} load average at the start"
            + ("; torch was imported already" if warm else "")
            + "):"
        )
        for stage, seconds in stamps.items():
            print(f"  {stage:58s} {seconds:8.2f} s")
        print("each step of opening again, alone:")
        print("\n".join(steps(data_dir, window.workspace, args.profile)))
        if args.rebuild:
            print("\n".join(rebuild_at_opening(data_dir, window.workspace)))
        window.document.undo_stack.setClean()
        window.close()
        app.processEvents()
    print(f"load average at the end {os.getloadavg()[0]:.1f}; the machine was shared: times are upper bounds")


if __name__ == "__main__":
    main()
