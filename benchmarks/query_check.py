"""The query checks measured: the colour measure that tells a photo from a drawing
(core.casework.query_check) on every PKU-Sketch and CUFS sketch and photo, and the cost of a large
sketch scan (core.common.imaging.decode_sketch). Inference-free; CPU only.

    python -m benchmarks.query_check [--data ../shared/data] [--scans 81,108]

The measure is taken as a search takes it: on the picture recorded with a file query (the sketch
decoded and scaled to 512 a side). Each sketch is also measured as if scanned from tinted paper
(every pixel multiplied by the paper's colour, saved as JPEG quality 75), in a temporary folder.
A scan of N megapixels is a mostly white 4:3 page with one mark, as JPEG and as PNG, decoded in a
fresh process: the time of ``file_query`` and the process's peak memory above what it held before."""

from __future__ import annotations

import argparse
import io
import json
import resource
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from core.casework.query import file_query
from core.casework.query_check import PHOTO_COLOUR_SHARE, colour_share
from core.common.imaging import decode_image

TINTS = {"cream": (1.0, 0.96, 0.86), "yellowed": (1.0, 0.93, 0.75), "bluish": (0.9, 0.95, 1.0)}


def measured(path: Path) -> float:
    query, _ = file_query(path)
    return colour_share(decode_image(query.png))


def tinted_copy(path: Path, tint: tuple[float, float, float], folder: Path) -> Path:
    rgb = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) * np.array(tint, dtype=np.float32)
    out = folder / f"{path.stem}.jpg"
    Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).save(out, "JPEG", quality=75)
    return out


def summary(name: str, shares: list[float], photos: bool) -> str:
    values = np.array(shares)
    flagged = int((values >= PHOTO_COLOUR_SHARE).sum())
    rate = f"detected {flagged}/{len(values)}" if photos else f"flagged (false positives) {flagged}/{len(values)}"
    return (
        f"{name:<28} n={len(values):3d}  min {values.min():.4f}  median {np.median(values):.4f}  "
        f"max {values.max():.4f}  {rate}"
    )


def colour_table(data: Path) -> None:
    sets = [
        ("PKU-Sketch sketches", data / "pku-sketch" / "sketch", False),
        ("PKU-Sketch photos", data / "pku-sketch" / "photo", True),
        ("CUFS sketches", data / "cufs" / "sketches", False),
        ("CUFS photos", data / "cufs" / "photos", True),
    ]
    print(f"colour measure: share of pixels off the paper's tint; a photo from {PHOTO_COLOUR_SHARE}")
    with tempfile.TemporaryDirectory() as scratch:
        for name, folder, photos in sets:
            paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
            print(summary(name, [measured(p) for p in paths], photos))
            if not photos:
                for tint_name, tint in TINTS.items():
                    into = Path(scratch) / f"{folder.parent.name}-{tint_name}"
                    into.mkdir()
                    shares = [measured(tinted_copy(p, tint, into)) for p in paths]
                    print(summary(f"  tinted {tint_name}", shares, False))


def streamed_png(path: Path, width: int, height: int) -> None:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    packer, row = zlib.compressobj(6), b"\x00" + b"\xff" * width
    body = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b""))


def white_jpeg(path: Path, width: int, height: int) -> None:
    page = Image.new("L", (width, height), 255)
    page.paste(40, (width // 3, height // 3, width // 3 + 400, height // 3 + 900))
    buffer = io.BytesIO()
    page.save(buffer, "JPEG", quality=80)
    path.write_bytes(buffer.getvalue())


def decode_once(path: str) -> None:
    """In a fresh process: decode one scan as a file query, print seconds and peak memory (MB)."""
    from core.common.imaging import read_file_bytes

    read_file_bytes(path)  # the file's bytes are held by the query anyway; count what decoding adds
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    _, pixels = file_query(path)
    seconds = time.perf_counter() - start
    peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    print(json.dumps({"seconds": seconds, "peak_mb": peak, "shape": list(pixels.shape)}))


def scan_table(megapixels: list[int]) -> None:
    print("large sketch scans (4:3 page, file_query in a fresh process): time, peak memory above the process's")
    with tempfile.TemporaryDirectory() as scratch:
        for mp in megapixels:
            width = int(round((mp * 1e6 * 4 / 3) ** 0.5))
            height = int(round(mp * 1e6 / width))
            for kind, write in (("JPEG", white_jpeg), ("PNG", streamed_png)):
                path = Path(scratch) / f"scan-{mp}.{kind.lower()}"
                write(path, width, height)
                done = subprocess.run(
                    [sys.executable, "-m", "benchmarks.query_check", "--decode-once", str(path)],
                    capture_output=True, text=True, check=True,
                )  # fmt: skip
                got = json.loads(done.stdout.strip().splitlines()[-1])
                size = path.stat().st_size / 1e6
                print(
                    f"{width}x{height} ({width * height / 1e6:.0f} MP) {kind:<4}  file {size:6.1f} MB"
                    f"  decoded to {got['shape'][1]}x{got['shape'][0]}  {got['seconds']:.2f} s  "
                    f"peak +{got['peak_mb']:.0f} MB"
                )
                path.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--scans", default="81,108", help="scan sizes in megapixels, comma separated ('' for none)")
    parser.add_argument("--no-colour", action="store_true", help="only the scans")
    parser.add_argument("--decode-once", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.decode_once:
        decode_once(args.decode_once)
        return
    if not args.no_colour:
        colour_table(args.data)
    if args.scans:
        scan_table([int(x) for x in args.scans.split(",")])


if __name__ == "__main__":
    main()
