"""``sketchsearch-cluster embed SOURCE... --out SHARDS [--address RAY_ADDRESS]``: embed a gallery on
a Ray cluster (or a local Ray instance) into Parquet shards for ``sketchsearch import-embeddings``.

Same contract as ``sketchsearch``: one error line on stderr and exit 2 for bad input."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from core.common.errors import SketchSearchError

EXIT_ERROR = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sketchsearch-cluster", description="Embed a gallery on a Ray cluster.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("embed", help="embed every image under SOURCE... into Parquet shards")
    p.add_argument("sources", nargs="+", type=Path, metavar="SOURCE")
    p.add_argument("--out", type=Path, required=True, metavar="SHARDS", help="an empty or new folder for the shards")
    p.add_argument("--address", help="the Ray cluster's address (default: start a local Ray instance)")
    p.add_argument("--model", type=Path, help="model folder, at the same path on every worker (default: bundled)")
    p.add_argument("--device", choices=("auto", "cpu"), default="auto", help="auto: a GPU per worker where there are")
    p.add_argument("--workers", type=int, default=1, help="model replicas (Ray actors) embedding in parallel")
    p.add_argument("--threads-per-worker", type=int, default=0, help="CPU threads of each replica (0: all)")
    p.add_argument("--batch", type=int, default=32, help="images per forward pass")
    p.add_argument("-v", "--verbose", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s: %(message)s")
    from core.cluster.embed import embed_to_shards

    try:
        if args.workers < 1 or args.batch < 1:
            raise SketchSearchError("--workers and --batch must be at least 1")
        summary = embed_to_shards(
            args.sources,
            args.out,
            address=args.address,
            model_dir=args.model,
            device=None if args.device == "auto" else args.device,
            workers=args.workers,
            threads_per_worker=args.threads_per_worker,
            batch_size=args.batch,
        )
    except SketchSearchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    print(
        f"embedded {summary.embedded}, failed {summary.failed} of {summary.files} file(s) "
        f"into {summary.shards} shard(s) in {args.out} in {summary.seconds:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
