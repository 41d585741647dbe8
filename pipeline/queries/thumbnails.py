"""Small pictures of image inputs, for the projector's sprite sheet and the report."""

from __future__ import annotations

import io
import math

import numpy as np
from apache_beam.io.filesystems import CompressionTypes, FileSystems
from PIL import Image

from embedbeam.transforms.sparse import InvalidInput
from embedbeam.transforms.sparse.image import DEFAULT_GRID, ink_grid


def thumbnail(uri: str, size: int = DEFAULT_GRID) -> np.ndarray | None:
    """`size` x `size` uint8 picture of the image at `uri` as the model sees it (ink on dark).

    None when the file is gone or no longer decodes: a table outlives its inputs.
    """
    try:
        with FileSystems.open(uri, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
            grid = ink_grid(handle.read(), size)
    except (OSError, InvalidInput):
        return None
    return np.round(grid * 255).astype(np.uint8)


def sprite_sheet(pictures: list[np.ndarray | None], size: int = DEFAULT_GRID) -> Image.Image:
    """Pictures tiled row-major on a square sheet, as TensorBoard's projector expects.

    A missing picture leaves its tile black.
    """
    per_side = max(1, math.ceil(math.sqrt(len(pictures))))
    sheet = np.zeros((per_side * size, per_side * size), np.uint8)
    for index, picture in enumerate(pictures):
        if picture is not None:
            row, column = divmod(index, per_side)
            sheet[row * size : (row + 1) * size, column * size : (column + 1) * size] = picture
    return Image.fromarray(sheet)


def png_bytes(picture: np.ndarray | Image.Image) -> bytes:
    """A picture (a 2-D uint8 array is grayscale) as PNG bytes."""
    image = picture if isinstance(picture, Image.Image) else Image.fromarray(picture)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
