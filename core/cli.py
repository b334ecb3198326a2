"""Headless command line: ``sketchsearch [--data-dir DIR] <command> ...``.

Scripts rely on this contract: JSON on stdout with ``--json``, one clear error line on stderr and
a non-zero exit for bad input, never a traceback."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
from pathlib import Path

from core.errors import SketchSearchError

COMMANDS = ("import", "search", "attributes", "verify", "rebuild-index", "stats", "prune", "import-embeddings")
EXIT_ERROR = 2


def _name_value(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name or not value:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got '{text}'")
    return name.strip(), value.strip()


def add_common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, help="catalogue and index folder (default: the user data folder)")
    parser.add_argument("--model", type=Path, help="model folder (default: the bundled model)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), help="where the model runs (default: auto)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details to stderr")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sketchsearch", description="Search a photo gallery with a sketch.")
    add_common_options(parser)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("import", help="import photos from files or folders (recursively)")
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")

    p = sub.add_parser("search", help="rank the gallery against one or more sketches")
    p.add_argument("sketches", nargs="+", type=Path, metavar="SKETCH")
    p.add_argument("--top", type=int, default=10, metavar="K", help="candidates per sketch (default 10)")
    p.add_argument(
        "--where",
        type=_name_value,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="keep only photos with this attribute value (repeat for several, all must hold)",
    )
    p.add_argument(
        "--min-confidence",
        type=float,
        default=0.0,
        help="model-predicted attribute values count only at this confidence or above",
    )
    p.add_argument("--json", action="store_true", help="print JSON")

    p = sub.add_parser("attributes", help="import or set photo attributes")
    attr = p.add_subparsers(dest="attributes_command", required=True, metavar="ACTION")
    q = attr.add_parser("import", help="read a CSV: column 'filename' or 'path', then one column per attribute")
    q.add_argument("csv", type=Path)
    q = attr.add_parser("set", help="set attributes of one photo by hand (wins over predictions)")
    q.add_argument("photo_id", type=int)
    q.add_argument("values", nargs="+", type=_name_value, metavar="NAME=VALUE")

    sub.add_parser("verify", help="check that catalogue, embeddings and index agree (exit 0 only then)")
    sub.add_parser("rebuild-index", help="embed photos that lack an embedding, then rebuild the index")
    p = sub.add_parser("stats", help="gallery size, index size, failures, model")
    p.add_argument("--json", action="store_true")
    sub.add_parser("prune", help="forget photos whose files are gone")
    p = sub.add_parser(
        "import-embeddings", help="ingest Parquet shards from 'sketchsearch-cluster embed' (no re-embedding)"
    )
    p.add_argument("shards", type=Path, metavar="SHARDS", help="the shard folder (or one .parquet file)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    return parser


class _ProgressBar:
    """A tqdm bar on a terminal; silent when stderr is not one (scripts, CI)."""

    def __init__(self, description: str):
        self.bar = None
        if sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(desc=description, unit="file", dynamic_ncols=True)

    def __call__(self, progress) -> None:
        if self.bar is not None:
            self.bar.total = progress.total
            self.bar.n = progress.done
            self.bar.set_postfix(added=progress.added, failed=progress.failed, refresh=False)
            self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _print_json(data) -> None:
    json.dump(data, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")


def _candidate_json(candidate) -> dict:
    return {
        "rank": candidate.rank,
        "photo_id": candidate.photo_id,
        "path": candidate.path,
        "score": round(candidate.score, 6),
        "attributes": {name: a.value for name, a in sorted(candidate.attributes.items())},
    }


def run(args: argparse.Namespace) -> int:
    from core.workspace import Workspace

    if args.command == "search":
        for sketch in args.sketches:  # fail fast, before the model loads
            if not sketch.is_file():
                raise SketchSearchError(f"{sketch}: sketch file not found")
    workspace = Workspace(args.data_dir, args.model, args.device)
    try:
        return COMMAND_HANDLERS[args.command](workspace, args)
    finally:
        workspace.close()


def _import(workspace, args) -> int:
    bar = _ProgressBar("importing")
    cancel = threading.Event()
    try:
        summary = workspace.import_paths(args.paths, progress=bar, cancel=cancel)
    except KeyboardInterrupt:
        cancel.set()
        raise
    finally:
        bar.close()
    if args.json:
        _print_json(summary.to_json())
    else:
        print(
            f"added {summary.added}, updated {summary.updated}, unchanged {summary.unchanged}, "
            f"failed {len(summary.failed)} in {summary.seconds:.1f} s"
        )
        for failure in summary.failed:
            print(f"  failed: {failure.path}: {failure.reason}")
    return 0


def _search(workspace, args) -> int:
    if args.top < 1:
        raise SketchSearchError("--top must be at least 1")
    results = workspace.search(
        args.sketches, top_k=args.top, where=dict(args.where), min_confidence=args.min_confidence
    )
    if args.json:
        _print_json([{"query": r.query, "candidates": [_candidate_json(c) for c in r.candidates]} for r in results])
        return 0
    for result in results:
        print(result.query)
        for c in result.candidates:
            attributes = " ".join(f"{k}={a.value}" for k, a in sorted(c.attributes.items()))
            print(f"  {c.rank:3d}  {c.score:+.4f}  #{c.photo_id}  {c.path}  {attributes}")
    return 0


def _attributes(workspace, args) -> int:
    if args.attributes_command == "import":
        count, unmatched = workspace.import_attribute_sheet(args.csv)
        print(f"set {count} attribute value(s); {len(unmatched)} row(s) matched no photo")
        return 0
    for name, value in args.values:
        workspace.schema.check(name, value)  # all checked before any is written
    for name, value in args.values:
        workspace.set_attribute(args.photo_id, name, value)
    print(f"photo {args.photo_id}: " + ", ".join(f"{n}={v}" for n, v in args.values))
    return 0


def _verify(workspace, args) -> int:
    report = workspace.verify()
    if report.ok:
        print("ok: catalogue, embeddings and index agree")
        return 0
    for problem in report.problems:
        print(f"problem: {problem}")
    return 1


def _rebuild_index(workspace, args) -> int:
    summary = workspace.embed_missing()
    index = workspace.rebuild_index()
    print(f"index rebuilt: {len(index)} photo(s), {summary.updated} newly embedded")
    for failure in summary.failed:
        print(f"  not embedded: {failure.path}: {failure.reason}")
    return 0


def _stats(workspace, args) -> int:
    stats = workspace.stats()
    if args.json:
        _print_json(stats.to_json())
    else:
        print(f"photos {stats.photos}, indexed {stats.indexed}, failed {stats.failed}, missing {stats.missing}")
        print(f"model {stats.model.name} ({stats.model.sha256[:12]}) on {stats.model.device}")
    return 0


def _prune(workspace, args) -> int:
    print(f"pruned {workspace.prune_missing()} photo(s) whose files are gone")
    return 0


def _import_embeddings(workspace, args) -> int:
    bar = _ProgressBar("ingesting")
    try:
        summary = workspace.import_embeddings(args.shards, progress=bar)
    finally:
        bar.close()
    if args.json:
        _print_json(summary.to_json())
    else:
        print(
            f"added {summary.added}, unchanged {summary.unchanged}, failed {len(summary.failed)} "
            f"in {summary.seconds:.1f} s (embeddings from {args.shards})"
        )
        for failure in summary.failed:
            print(f"  failed: {failure.path}: {failure.reason}")
    return 0


COMMAND_HANDLERS = {
    "import": _import,
    "search": _search,
    "attributes": _attributes,
    "verify": _verify,
    "rebuild-index": _rebuild_index,
    "stats": _stats,
    "prune": _prune,
    "import-embeddings": _import_embeddings,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s: %(message)s")
    logging.getLogger("faiss").setLevel(logging.WARNING)
    try:
        return run(args)
    except SketchSearchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
