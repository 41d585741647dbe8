"""The image featurizer on real digits, other formats and broken files, no pipeline."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from embedbeam.transforms.sparse import InvalidInput
from embedbeam.transforms.sparse import image as image_module
from embedbeam.transforms.sparse.image import featurize_image, featurize_images
from tests.conftest import encode


def test_real_digit_keeps_its_bright_strokes(seven_png):
    features = featurize_image(seven_png)

    pixels = np.asarray(Image.open(io.BytesIO(seven_png)), dtype=np.float32).ravel() / 255
    expected_ids = np.flatnonzero(pixels > 0.2)
    np.testing.assert_array_equal(features.ids, expected_ids)
    np.testing.assert_allclose(features.weights, pixels[expected_ids], atol=1e-6)
    assert features.ids.dtype == np.int64 and features.weights.dtype == np.float32
    assert 50 < features.nnz < 400


def test_dark_ink_on_white_paper_is_inverted_to_the_same_features(seven_png):
    digit = Image.open(io.BytesIO(seven_png))
    on_paper = Image.fromarray(255 - np.asarray(digit))

    np.testing.assert_array_equal(
        featurize_image(encode(on_paper, "PNG")).ids, featurize_image(seven_png).ids
    )


@pytest.mark.parametrize("image_format", ["JPEG", "BMP", "GIF", "WEBP", "PPM"])
def test_other_formats_and_colour_decode_to_nearly_the_same_cells(seven_png, image_format):
    digit = Image.open(io.BytesIO(seven_png)).convert("RGB")
    reference = set(featurize_image(seven_png).ids)

    ids = set(featurize_image(encode(digit, image_format)).ids)

    assert len(ids & reference) / len(ids | reference) > 0.8


def test_a_large_photo_is_fitted_onto_the_grid_keeping_its_aspect(seven_png):
    digit = Image.open(io.BytesIO(seven_png))
    wide = Image.new("L", (280, 140))
    wide.paste(digit.resize((140, 140)), (70, 0))

    features = featurize_image(encode(wide, "PNG"), grid=28)

    assert features.ids.max() < 28 * 28
    rows = features.ids // 28
    assert rows.min() >= 7 and rows.max() < 21  # padded to a square: strokes in the middle band


def test_transparent_background_counts_as_paper():
    image = Image.new("RGBA", (28, 28), (0, 0, 0, 0))
    image.paste((0, 0, 0, 255), (10, 4, 18, 24))

    features = featurize_image(encode(image, "PNG"))

    assert features.nnz == 8 * 20


def test_an_all_background_image_has_no_active_features():
    blank = encode(Image.new("L", (28, 28), 0), "PNG")

    with pytest.raises(InvalidInput) as caught:
        featurize_image(blank)

    assert caught.value.reason == "no_active_features"


@pytest.mark.parametrize(
    "data",
    [b"", b"not an image at all", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40],
    ids=["empty", "text", "png-signature-only"],
)
def test_bytes_that_are_no_image_are_undecodable(data):
    with pytest.raises(InvalidInput) as caught:
        featurize_image(data)

    assert caught.value.reason == "undecodable_image"


def test_a_truncated_png_is_undecodable(seven_png):
    with pytest.raises(InvalidInput) as caught:
        featurize_image(seven_png[: len(seven_png) // 2])

    assert caught.value.reason == "undecodable_image"


def test_a_header_promising_huge_dimensions_is_refused_before_decoding():
    huge = encode(Image.new("1", (20000, 20000)), "PNG")  # a few KB on disk, 400 MP decoded

    with pytest.raises(InvalidInput) as caught:
        featurize_image(huge)

    assert caught.value.reason == "image_too_large"


def test_a_batch_featurizes_exactly_as_one_image_at_a_time(digits, seven_png):
    images, _ = digits
    from examples.digits import digit_png

    on_paper = encode(Image.fromarray(255 - np.asarray(Image.open(io.BytesIO(seven_png)))), "PNG")
    wide = Image.new("L", (56, 28))
    wide.paste(Image.open(io.BytesIO(seven_png)), (14, 0))
    datas = [digit_png(images[i]) for i in range(0, 5000, 250)]
    datas[3:3] = [b"not an image", on_paper, encode(Image.new("L", (28, 28)), "PNG")]
    datas.append(encode(wide, "JPEG"))

    result = featurize_images(datas)

    one_by_one = []
    for data in datas:
        try:
            one_by_one.append(featurize_image(data))
        except InvalidInput as error:
            one_by_one.append(error.reason)
    assert [(i, error.reason) for i, error in result.failures] == [
        (3, "undecodable_image"),
        (5, "no_active_features"),
    ]
    expected = [f for f in one_by_one if not isinstance(f, str)]
    assert result.kept.tolist() == [i for i, f in enumerate(one_by_one) if not isinstance(f, str)]
    assert result.rows.lengths.tolist() == [f.nnz for f in expected]
    assert result.rows.ids.tobytes() == np.concatenate([f.ids for f in expected]).tobytes()
    assert result.rows.weights.tobytes() == np.concatenate([f.weights for f in expected]).tobytes()


def _features_or_reason(data: bytes) -> tuple:
    try:
        features = featurize_image(data)
    except InvalidInput as error:
        return ("dead letter", error.reason)
    return (features.ids.tobytes(), features.weights.tobytes())


def _with_broken_checksum(png: bytes, chunk: bytes) -> bytes:
    at = png.index(chunk)
    (length,) = struct.unpack(">I", png[at - 4 : at])
    crc = at + 4 + length
    return png[:crc] + bytes([png[crc] ^ 0xFF]) + png[crc + 1 :]


def test_libpng_and_pillow_agree_on_every_pixel_and_every_refusal(digits, seven_png, monkeypatch):
    """Plain grayscale PNGs take libpng; the features and dead letters are Pillow's, byte for byte."""
    from examples.digits import digit_png

    images, _ = digits
    with_text = io.BytesIO()
    text = PngImagePlugin.PngInfo()
    text.add_text("scanner", "flatbed")
    Image.open(io.BytesIO(seven_png)).save(with_text, "PNG", pnginfo=text)
    datas = [digit_png(images[i]) for i in range(0, 5000, 50)]
    datas += [
        seven_png[: len(seven_png) // 2],  # truncated
        seven_png[: len(seven_png) - 12],  # no IEND: both decoders read it
        _with_broken_checksum(seven_png, b"IDAT"),  # libpng refuses, Pillow reads it
        _with_broken_checksum(seven_png, b"IHDR"),
        _with_broken_checksum(with_text.getvalue(), b"tEXt"),  # Pillow refuses, libpng would not
        encode(Image.new("L", (28, 28)), "PNG"),  # blank
    ]
    assert all(image_module._is_plain_gray_png(d, 10**6) for d in datas[:100])

    with_libpng = [_features_or_reason(data) for data in datas]
    monkeypatch.setattr(image_module, "_is_plain_gray_png", lambda data, max_pixels: False)
    pillow_only = [_features_or_reason(data) for data in datas]

    assert with_libpng == pillow_only
    refused = [outcome[1] if outcome[0] == "dead letter" else "read" for outcome in with_libpng]
    assert refused[100:] == [
        "undecodable_image",
        "read",
        "read",
        "undecodable_image",
        "undecodable_image",
        "no_active_features",
    ]
