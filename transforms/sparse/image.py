"""Image -> the "on" cells of a small grayscale grid.

Any format Pillow decodes is turned into ink-on-dark: grayscale, inverted when
the background is light (a scanned digit on paper looks like an MNIST digit
afterwards), padded to a square so strokes keep their shape, and resized onto
a `grid` x `grid` raster. Cells brighter than `threshold` are the active
features; cell index (row-major) is the id, brightness in [0, 1] the weight.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError

from transforms.sparse.features import InvalidInput, SparseFeatures

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
    pixels = ink_grid(data, grid, max_pixels)
    ids = np.flatnonzero(pixels > threshold)
    if ids.size == 0:
        raise InvalidInput(
            "no_active_features",
            f"no cell of the {grid}x{grid} grid is brighter than threshold {threshold}",
        )
    return SparseFeatures(ids=ids.astype(np.int64), weights=pixels.ravel()[ids].astype(np.float32))


def _decode(data: bytes, max_pixels: int) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
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


def _to_ink_on_dark(image: Image.Image, grid: int) -> np.ndarray:
    """Grayscale float grid in [0, 1] where the strokes are bright."""
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        # Transparent pixels count as a white page behind the strokes.
        page = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(page, image.convert("RGBA"))
    gray = np.asarray(image.convert("L"))
    if _border_mean(gray) > 127.5:
        gray = 255 - gray
    height, width = gray.shape
    side = max(height, width)
    if height != width:  # centre on a dark square so strokes keep their shape
        top, left = (side - height) // 2, (side - width) // 2
        gray = np.pad(gray, ((top, side - height - top), (left, side - width - left)))
    if side != grid:
        gray = np.asarray(Image.fromarray(gray).resize((grid, grid), Image.Resampling.BOX))
    return gray.astype(np.float32) / 255.0


def _border_mean(gray: np.ndarray) -> float:
    """Mean of the outermost rows and columns: the background's shade (0..255)."""
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    return float(border.mean())


def ink_grid(
    data: bytes, grid: int = DEFAULT_GRID, max_pixels: int = DEFAULT_MAX_PIXELS
) -> np.ndarray:
    """The `grid` x `grid` raster in [0, 1] that features are read from: what the model sees."""
    return _to_ink_on_dark(_decode(data, max_pixels), grid)
