"""Image -> the "on" cells of a small grayscale grid.

Any format Pillow decodes is turned into ink-on-dark: grayscale, inverted when
the background is light (a scanned digit on paper looks like an MNIST digit
afterwards), padded to a square so strokes keep their shape, and resized onto
a `grid` x `grid` raster. Cells brighter than `threshold` are the active
features; cell index (row-major) is the id, brightness in [0, 1] the weight.

`featurize_images` does a whole batch: only decoding is per image; inverting,
thresholding and collecting the active cells run as numpy over the batch
(most inputs, like MNIST, already have the grid's size). `featurize_image` is
the same code on a batch of one.
"""

from __future__ import annotations

import contextlib
import io
import struct
import warnings
from collections.abc import Iterator, Sequence

import imagecodecs
import numpy as np
from PIL import Image, UnidentifiedImageError

from embedbeam.transforms.sparse.features import (
    BatchResult,
    InvalidInput,
    SparseFeatures,
    SparseRows,
)

DEFAULT_GRID = 28
DEFAULT_THRESHOLD = 0.2
# Refuse to decode images whose header promises more pixels than this: a tiny
# file can claim gigapixels (a decompression bomb) and take the worker down.
DEFAULT_MAX_PIXELS = 40_000_000


def image_vocabulary_size(grid: int) -> int:
    """Number of possible feature ids for a grid: one per cell."""
    return grid * grid


def featurize_image(
    data: bytes,
    grid: int = DEFAULT_GRID,
    threshold: float = DEFAULT_THRESHOLD,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> SparseFeatures:
    """Decodes `data` and returns the grid cells brighter than `threshold`.

    Raises InvalidInput with reason `undecodable_image`, `image_too_large` or
    `no_active_features` (a blank image carries nothing to embed).
    """
    pixels = ink_grid(data, grid, max_pixels).ravel()
    ids = np.flatnonzero(pixels > threshold)
    if ids.size == 0:
        raise _nothing_active(grid, threshold)
    return SparseFeatures(ids=ids.astype(np.int64), weights=pixels[ids])


def featurize_images(
    datas: Sequence[bytes],
    grid: int = DEFAULT_GRID,
    threshold: float = DEFAULT_THRESHOLD,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> BatchResult:
    """`featurize_image` of every input, as one SparseRows plus the inputs that failed."""
    grids = np.zeros((len(datas), grid, grid), np.uint8)
    decoded, at_grid_size, failures = [], [], []
    with _bombs_as_errors():
        for index, data in enumerate(datas):
            try:
                gray = _decode_gray(data, max_pixels)
            except InvalidInput as error:
                failures.append((index, error))
                continue
            decoded.append(index)
            if gray.shape == (grid, grid):
                grids[index] = gray  # inverted below, with all the others of this size
                at_grid_size.append(index)
            else:
                grids[index] = _fit_to_grid(_inverted_if_light(gray[None])[0], grid)
    if at_grid_size:
        grids[at_grid_size] = _inverted_if_light(grids[at_grid_size])
    pixels = grids[decoded].reshape(len(decoded), grid * grid) / np.float32(255)
    active = pixels > threshold
    counts = active.sum(axis=1)
    failures += [(int(i), _nothing_active(grid, threshold)) for i in np.array(decoded)[counts == 0]]
    # np.nonzero walks row-major: row by row, and within a row by ascending cell id.
    _, ids = np.nonzero(active)
    row_splits = np.zeros(int((counts > 0).sum()) + 1, np.int64)
    np.cumsum(counts[counts > 0], out=row_splits[1:])
    rows = SparseRows(ids=ids.astype(np.int64), weights=pixels[active], row_splits=row_splits)
    kept = np.asarray(decoded, np.int64)[counts > 0]
    return BatchResult(rows=rows, kept=kept, failures=sorted(failures, key=lambda f: f[0]))


def _nothing_active(grid: int, threshold: float) -> InvalidInput:
    return InvalidInput(
        "no_active_features",
        f"no cell of the {grid}x{grid} grid is brighter than threshold {threshold}",
    )


@contextlib.contextmanager
def _bombs_as_errors() -> Iterator[None]:
    """Pillow's decompression-bomb warning raised as an error (entered once per batch: it is slow)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        yield


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _decode_gray(data: bytes, max_pixels: int) -> np.ndarray:
    """uint8 grayscale pixels of `data`; call it inside `_bombs_as_errors()`.

    A plain 8-bit grayscale PNG (MNIST's kind) is decoded by libpng
    (imagecodecs), faster than Pillow for a small image and without holding
    the GIL (measured in bench/README.md, 'Why the code is this way'); its
    pixels are Pillow's, byte for byte. Anything else,
    and any file libpng refuses, goes through Pillow, whose errors (and their
    reasons) are the dead letters'.
    """
    if _is_plain_gray_png(data, max_pixels):
        try:
            return imagecodecs.png_decode(data)
        except imagecodecs.PngError:
            pass  # Pillow decides: it may read it (a bad IDAT checksum) or say why not
    return _grayscale(_decode(data, max_pixels))


def _is_plain_gray_png(data: bytes, max_pixels: int) -> bool:
    """A non-interlaced 8-bit grayscale PNG whose IHDR is directly followed by IDAT.

    Nothing between them means no palette, no transparency (tRNS), no gamma and
    no ancillary chunk whose broken checksum Pillow would refuse but libpng
    only warn about; both decoders then agree on every pixel and on every error.
    """
    if len(data) < 41 or not data.startswith(_PNG_SIGNATURE) or data[12:16] != b"IHDR":
        return False
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", data[16:29])
    return (
        data[8:12] == b"\x00\x00\x00\x0d"
        and data[37:41] == b"IDAT"
        and (depth, colour, interlace) == (8, 0, 0)
        and width * height <= max_pixels
    )


def _decode(data: bytes, max_pixels: int) -> Image.Image:
    """Pillow's image of `data`; call it inside `_bombs_as_errors()`."""
    try:
        image = Image.open(io.BytesIO(data))
        if image.width * image.height > max_pixels:
            raise InvalidInput(
                "image_too_large",
                f"{image.width}x{image.height} exceeds the {max_pixels}-pixel limit",
            )
        image.load()
    except InvalidInput:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise InvalidInput("image_too_large", str(error)) from error
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        # Pillow reports truncated or corrupt data as OSError/SyntaxError/ValueError.
        raise InvalidInput("undecodable_image", f"{type(error).__name__}: {error}") from error
    return image


def _grayscale(image: Image.Image) -> np.ndarray:
    """uint8 grayscale pixels; transparent pixels count as a white page behind the strokes."""
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        page = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(page, image.convert("RGBA"))
    if image.mode != "L":
        image = image.convert("L")
    return np.asarray(image)


def _inverted_if_light(grays: np.ndarray) -> np.ndarray:
    """Each [n, h, w] image inverted where its border (the background) is light."""
    border = np.concatenate(
        [grays[:, 0], grays[:, -1], grays[:, :, 0], grays[:, :, -1]], axis=1
    ).mean(axis=1)
    light = border > 127.5
    if not light.any():
        return grays
    grays = grays.copy()
    grays[light] = 255 - grays[light]
    return grays


def _fit_to_grid(gray: np.ndarray, grid: int) -> np.ndarray:
    """Centres `gray` on a dark square (strokes keep their shape) and resizes it to the grid."""
    height, width = gray.shape
    side = max(height, width)
    if height != width:
        top, left = (side - height) // 2, (side - width) // 2
        gray = np.pad(gray, ((top, side - height - top), (left, side - width - left)))
    if side != grid:
        gray = np.asarray(Image.fromarray(gray).resize((grid, grid), Image.Resampling.BOX))
    return gray


def ink_grid(
    data: bytes, grid: int = DEFAULT_GRID, max_pixels: int = DEFAULT_MAX_PIXELS
) -> np.ndarray:
    """The `grid` x `grid` raster in [0, 1] that features are read from: what the model sees."""
    with _bombs_as_errors():
        gray = _decode_gray(data, max_pixels)
    return _fit_to_grid(_inverted_if_light(gray[None])[0], grid) / np.float32(255)
