"""``sketchsearch-train``: train, evaluate and initialise SketchSearch models."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import shlex
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

# A training run owns its cores: spinning OpenMP waits make a CPU step twice as fast as the sleeping
# waits ``core`` asks for on behalf of the GUI (measured: 8 steps in 10.6 s instead of 22.3 s on 2
# cores). Set before ``core`` loads torch; a value the user set wins.
os.environ.setdefault("OMP_WAIT_POLICY", "ACTIVE")

from core.common.errors import SketchSearchError
from core.model.manifest import read_manifest
from core.model.untrained import init_checkpoint
from training.config import SOURCES, TARGETS, FitConfig, LossWeights

if TYPE_CHECKING:
    from core.model.inference import InferenceModel
    from training.data import ImageRecord
    from training.distractors import DistractorCache

_FIT_SKIP = {"losses", "out", "root", "dataset", "split"}


def _field_type(annotation: str):
    base = annotation.replace(" | None", "").strip()
    return {"int": int, "float": float, "str": str, "bool": bool}[base]


def add_fit_arguments(parser: argparse.ArgumentParser, skip: set[str] = frozenset()) -> None:
    """One option per :class:`FitConfig` field (``--source-epochs``), and ``--w-<loss>`` per loss
    weight; defaults are the config's."""
    for f in dataclasses.fields(FitConfig):
        if f.name in _FIT_SKIP | set(skip):
            continue
        flag = "--" + f.name.replace("_", "-")
        kind = _field_type(f.type)
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None)
        elif f.name == "source":
            parser.add_argument(flag, choices=SOURCES, default=None)
        else:
            parser.add_argument(flag, type=kind, default=None)
    for f in dataclasses.fields(LossWeights):
        parser.add_argument(
            f"--w-{f.name}", type=float, default=None, help=f"weight of the {f.name} loss (default {f.default})"
        )


def fit_config(args: argparse.Namespace, **fixed) -> FitConfig:
    values = {k: v for k, v in vars(args).items() if v is not None}
    weights = {f.name: values.pop(f"w_{f.name}") for f in dataclasses.fields(LossWeights) if f"w_{f.name}" in values}
    known = {f.name for f in dataclasses.fields(FitConfig)}
    config = {k: v for k, v in values.items() if k in known}
    config.update(fixed)
    config["out"], config["root"] = str(config["out"]), str(config["root"])
    return FitConfig(**config, losses=LossWeights(**weights))


def add_distractor_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--distractors",
        type=Path,
        nargs="+",
        metavar="DIR",
        help="re-ID photo folders (<id>_<cam>_<k>.jpg) added to the test gallery, never as queries: "
        "figures are reported with and without them (the shared CUHK03 folder gives ids 0743-0842)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sketchsearch-train", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    init = sub.add_parser("init", help="write an ImageNet-initialised (untrained) checkpoint")
    init.add_argument("--out", type=Path, required=True)
    init.add_argument("--backbone", default="efficientnet_lite0")
    init.add_argument("--weights", type=Path, help="backbone weights file (required for resnet50)")
    init.add_argument("--embedding-dim", type=int)

    export = sub.add_parser(
        "export-onnx",
        help="write a model's ONNX export beside its weights (what the app runs; fit and adapt do it themselves)",
    )
    export.add_argument("model", type=Path, help="the model folder")

    fit = sub.add_parser("fit", help="train a sketch/photo model and export it with its test metrics")
    fit.add_argument("--dataset", choices=TARGETS, default="pku")
    fit.add_argument("--root", type=Path, required=True, help="target data set folder")
    fit.add_argument("--split", type=int, default=1, help="PKU-Sketch split 1..10")
    fit.add_argument("--out", type=Path, required=True, help="run folder (state, log, best/, model/)")
    add_fit_arguments(fit)

    evaluate = sub.add_parser("evaluate", help="retrieval (CMC, mAP) and attribute accuracy of a model")
    evaluate.add_argument("--dataset", choices=TARGETS, default="pku")
    evaluate.add_argument("--root", type=Path, required=True)
    evaluate.add_argument("--split", type=int, default=1, help="PKU-Sketch split 1..10")
    evaluate.add_argument("--seed", type=int, default=0, help="identity split seed (non-PKU data sets)")
    evaluate.add_argument("--test-identities", type=float, default=0.25, help="held-out share (non-PKU)")
    evaluate.add_argument("--model", type=Path, required=True, help="checkpoint folder")
    add_distractor_argument(evaluate)
    evaluate.add_argument("--device", default=None)
    evaluate.add_argument("--threads", type=int)
    evaluate.add_argument("--json", action="store_true", help="print the figures as JSON")
    evaluate.add_argument(
        "--test-time-flip",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="override the manifest's test-time flip (ablations)",
    )
    evaluate.add_argument(
        "--clean-sketches",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="override the manifest's sketch clean-up (ablations)",
    )

    bench = sub.add_parser(
        "benchmark",
        help="all 10 PKU-Sketch splits, mean and std: trains one model per split into --out, "
        "or with --model evaluates one fixed model (only fair for a model that saw no PKU data)",
    )
    bench.add_argument("dataset", choices=["pku"])
    bench.add_argument("--root", type=Path, required=True)
    bench.add_argument("--model", type=Path)
    bench.add_argument("--out", type=Path, help="folder for the per-split runs (split-N/)")
    bench.add_argument("--splits", type=int, nargs="+", default=list(range(1, 11)))
    bench.add_argument("--json", action="store_true")
    add_distractor_argument(bench)
    add_fit_arguments(bench)
    add_adapt_parser(sub)
    return parser


def add_adapt_parser(sub) -> None:
    from training.adapt import AdaptSettings

    defaults = AdaptSettings()
    adapt = sub.add_parser(
        "adapt",
        help="adapt a model to a gallery without labels (AMA); a rerun of the same command resumes",
    )
    adapt.add_argument("--model", type=Path, required=True, help="the model folder to start from")
    adapt.add_argument("--data-dir", type=Path, required=True, help="the gallery's data folder (its catalogue)")
    adapt.add_argument("--out", type=Path, required=True, help="the new model folder (must not exist)")
    adapt.add_argument("--sketches", type=Path, help="a folder of the agency's own sketches (optional, unlabelled)")
    adapt.add_argument("--epochs", type=int, default=defaults.epochs)
    adapt.add_argument("--batch", type=int, default=defaults.batch, help="gallery photos per step")
    adapt.add_argument("--lr", type=float, default=defaults.lr)
    adapt.add_argument("--seed", type=int, default=defaults.seed)
    adapt.add_argument("--threads", type=int, help="torch CPU threads")
    adapt.add_argument("--work", type=Path, help="training state folder (default: .OUT.adapt beside OUT)")
    adapt.add_argument("--device", default="auto")


def run_adapt(args: argparse.Namespace, command: str) -> None:
    from training.adapt import AdaptSettings, adapt

    if args.epochs < 1 or args.batch < 2:
        raise SketchSearchError("--epochs must be at least 1 and --batch at least 2")
    settings = AdaptSettings(epochs=args.epochs, batch=args.batch, lr=args.lr, seed=args.seed, threads=args.threads)
    cancel = threading.Event()  # Ctrl+C or a TERM signal: the state is saved and a rerun resumes
    previous = {sig: signal.signal(sig, lambda *_: cancel.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        result = adapt(
            args.model,
            args.data_dir,
            args.out,
            sketches=args.sketches,
            settings=settings,
            work_dir=args.work,
            device=args.device,
            command=command,
            cancel=cancel,
        )
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    last = result.guard[-1]
    resumed = ""
    if result.resumed_at:
        resumed = f", resumed at epoch {result.resumed_at[0]} step {result.resumed_at[1]}"
    print(
        f"wrote {result.out} (weights sha256 {result.manifest.weights_sha256[:12]}) "
        f"in {result.seconds:.0f} s{resumed}; "
        f"spread {last['spread']:.4f}, neighbour agreement {100 * last['agreement']:.0f}% "
        f"(base {result.guard[0]['spread']:.4f}, {100 * result.guard[0]['agreement']:.0f}%)"
    )


def evaluate_model(
    model: Path,
    dataset: str,
    root: Path,
    split: int,
    *,
    seed: int = 0,
    test_identities: float = 0.25,
    device: str | None = None,
    test_time_flip: bool | None = None,
    clean_sketches: bool | None = None,
    distractors: DistractorCache | None = None,
) -> dict:
    """Test figures of a checkpoint; ``test_time_flip``/``clean_sketches`` override its manifest
    (None: as the manifest says), to measure what each setting is worth on the same weights.
    ``distractors``: also the large-gallery figures (the distractors embedded once per model)."""
    from core.model.inference import InferenceModel
    from training.engine import load_target
    from training.evaluate import with_settings

    inference = InferenceModel(model, device)
    inference.manifest = with_settings(inference.manifest, test_time_flip=test_time_flip, clean_sketches=clean_sketches)
    config = FitConfig(out="", root=str(root), dataset=dataset, split=split, seed=seed, test_identities=test_identities)
    return evaluate_inference(inference, load_target(config, inference.manifest.attribute_schema).test, distractors)


def evaluate_inference(
    inference: InferenceModel, test: list[ImageRecord], distractors: DistractorCache | None = None
) -> dict:
    """Headline figures of a loaded model on ``test`` records, with the large gallery when given."""
    from training.evaluate import evaluate_records, headline

    extra = distractors.embeddings(inference, inference.manifest.embedding_key) if distractors else None
    return headline(evaluate_records(inference, test, inference.manifest.attribute_schema, extra))


def _print_headline(figures: dict, title: str) -> None:
    ranks = "  ".join(f"{k} {figures[k]:.2f}" for k in ("R1", "R5", "R10", "R20", "mAP"))
    print(f"{title}: sketch->photo {ranks}  ({figures['queries']} queries, {figures['gallery']} photos)")
    p2s = figures["photo_to_sketch"]
    print("  photo->sketch " + "  ".join(f"{k} {p2s[k]:.2f}" for k in ("R1", "R5", "R10", "R20", "mAP")))
    if figures["attribute_accuracy"]:
        attrs = ", ".join(f"{k} {v:.1f}" for k, v in figures["attribute_accuracy"].items())
        print(f"  attribute accuracy (test photos): {attrs}")
    if figures.get("by_style"):
        print("  sketch->photo by painting style: " + _style_line(figures["by_style"]))
    if figures.get("large_gallery"):
        large = figures["large_gallery"]
        ranks = "  ".join(f"{k} {large[k]:.2f}" for k in ("R1", "R5", "R10", "R20", "mAP"))
        print(f"  large gallery: sketch->photo {ranks}  ({large['gallery']} photos with the distractors)")


def _style_line(by_style: dict) -> str:
    return ", ".join(
        f"{style} R1 {f['R1']:.1f} mAP {f['mAP']:.1f} ({f['queries']} queries)" for style, f in by_style.items()
    )


def load_distractors(folders: list[Path] | None) -> DistractorCache | None:
    from training.distractors import DistractorCache, distractor_records

    return DistractorCache(distractor_records(folders)) if folders else None


def check_source_apart(config: FitConfig, distractors: DistractorCache) -> None:
    """The training source may share no identity with the distractors it will be measured against
    (beyond the named shared sets that ``prepare_data`` always checks: an agency's own folders)."""
    from core.model.attributes import PERSON_ATTRIBUTES
    from training.data import DataError, identities
    from training.engine import load_source

    shared = set(identities(load_source(config, PERSON_ATTRIBUTES))) & set(identities(distractors.records))
    if shared:
        shown = ", ".join(f"{d}/{i}" for d, i in sorted(shared)[:5])
        raise DataError(f"the training source and the distractors share {len(shared)} identities ({shown})")


def run_benchmark(args: argparse.Namespace, command: str) -> dict:
    from training.engine import fit
    from training.evaluate import pool_by_style, summarise

    distractors = load_distractors(args.distractors)
    per_split = {}
    for split in args.splits:
        device = getattr(args, "device", None)
        if args.model:
            figures = evaluate_model(args.model, "pku", args.root, split, device=device, distractors=distractors)
        else:
            if args.out is None:
                raise SketchSearchError("benchmark needs --out (to train per split) or --model")
            config = fit_config(args, out=args.out / f"split-{split}", root=args.root, dataset="pku", split=split)
            if distractors:
                check_source_apart(config, distractors)
            manifest = fit(config, command=f"{command} [split {split}]")
            figures = manifest.provenance["metrics"]["test"]
            if distractors:  # the same test people as the run measured, now with the distractors too
                from core.model.inference import InferenceModel
                from training.engine import prepare_data

                inference = InferenceModel(Path(config.out) / "model", device)
                test = prepare_data(config, inference.manifest.attribute_schema).test
                figures = evaluate_inference(inference, test, distractors)
        per_split[split] = figures
        if not args.json:
            _print_headline(figures, f"split {split}")
    results = list(per_split.values())
    return {"splits": per_split, "summary": summarise(results), "by_style": pool_by_style(results)}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    command = "sketchsearch-train " + shlex.join(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if args.command == "init":
            manifest = init_checkpoint(
                args.out,
                args.backbone,
                args.weights,
                args.embedding_dim,
                command=command,
            )
            print(f"wrote {args.out} (weights sha256 {manifest.weights_sha256[:12]})")
        elif args.command == "export-onnx":
            from core.model.onnx_export import export_onnx

            written = export_onnx(args.model)
            manifest = read_manifest(args.model)
            print(
                f"wrote {', '.join(str(p) for p in written.values())}; "
                f"embedding key now {manifest.embedding_key[:12]} (galleries re-index once for it)"
            )
        elif args.command == "fit":
            from training.engine import fit

            manifest = fit(fit_config(args), command=command)
            test = manifest.provenance["metrics"]["test"]
            _print_headline(test, f"wrote {args.out / 'model'}; test")
        elif args.command == "evaluate":
            if args.threads:
                import torch

                torch.set_num_threads(args.threads)
            figures = evaluate_model(
                args.model,
                args.dataset,
                args.root,
                args.split,
                seed=args.seed,
                test_identities=args.test_identities,
                device=args.device,
                test_time_flip=args.test_time_flip,
                clean_sketches=args.clean_sketches,
                distractors=load_distractors(args.distractors),
            )
            if args.json:
                print(json.dumps(figures, indent=2))
            else:
                part = f"split {args.split}" if args.dataset == "pku" else f"seed {args.seed} test identities"
                _print_headline(figures, f"{args.model} on {args.dataset} {part}")
        elif args.command == "adapt":
            run_adapt(args, command)
        elif args.command == "benchmark":
            if args.threads:
                import torch

                torch.set_num_threads(args.threads)
            result = run_benchmark(args, command)
            if args.json:
                print(json.dumps(result, indent=2))
            else:
                print("mean ± std over splits " + ", ".join(map(str, args.splits)) + ":")
                print("  " + "  ".join(f"{k} {v['mean']:.2f} ± {v['std']:.2f}" for k, v in result["summary"].items()))
                if result["by_style"]:
                    print("  by painting style, all splits' queries pooled: " + _style_line(result["by_style"]))
    except SketchSearchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # the adaptation saves its state as it goes: a rerun resumes
        print("error: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
