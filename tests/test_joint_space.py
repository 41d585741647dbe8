"""A joint model: digits seen, heard and written in one space, one table, queries across.

Trained by the real CLI on a tiny mixed folder (real MNIST digits, espeak-ng voices
in two languages, digit words in four), embedded into one committed table.
"""

from __future__ import annotations

import pathlib

import numpy as np
import pyarrow.parquet as pq
import pytest

from embedbeam.pipeline import cli
from embedbeam.pipeline.model.joint import balanced_index, lay_out
from embedbeam.pipeline.model.model_dir import read_model_info
from embedbeam.pipeline.queries.similar import similar
from embedbeam.pipeline.queries.table import EmbeddingTable, load_table, read_run_record
from embedbeam.transforms.assign_clusters import nearest_centroids
from embedbeam.transforms.table.centroids import read_centroids
from examples.digit_words import digit_word, write_digit_words
from examples.digits import digit_png
from examples.joint_digits import accuracy_by_source, without_real_speakers
from examples.spoken_digits import WORDS, voices_per_language, write_spoken_digits

pytestmark = pytest.mark.slow


def test_digit_words_are_spelled_in_five_languages_under_the_english_word(tmp_path):
    paths = write_digit_words(tmp_path)

    assert len(paths) == 50
    assert (tmp_path / "seven" / "de.txt").read_text(encoding="utf-8") == "sieben\n"
    assert [digit_word(7, language) for language in ("en", "fr", "es", "it")] == [
        "seven", "sept", "siete", "sette",
    ]  # fmt: skip
    with pytest.raises(ValueError):
        digit_word(7, "nl")


def test_balanced_index_repeats_each_group_up_to_the_largest():
    groups = np.array([0] * 6 + [1] * 2 + [2] * 3)

    index = balanced_index(np.arange(groups.size), groups, seed=0)

    assert np.bincount(groups[index]).tolist() == [6, 6, 6]
    assert sorted(index[groups[index] == 1].tolist()) == [6, 6, 6, 7, 7, 7]
    assert len(set(index[groups[index] == 2].tolist())) == 3  # every row, none left out


def test_modalities_are_laid_end_to_end_in_one_id_space():
    parts = lay_out({"image": 784, "audio": 768, "text": 120})

    assert [(p.id_offset, p.vocabulary_size) for p in parts.values()] == [
        (0, 784), (784, 768), (1552, 120),
    ]  # fmt: skip


def _table(modality: str, uris: list[str], embeddings: list[list[float]]) -> EmbeddingTable:
    return EmbeddingTable(
        modality=modality,
        ids=[f"id-{uri}" for uri in uris],
        uris=uris,
        labels=[pathlib.PurePosixPath(uri).parent.name for uri in uris],
        embeddings=np.asarray(embeddings, dtype=np.float32),
        cluster_ids=np.zeros(len(uris), dtype=np.int32),
        model_version="joint-v1",
        run_id="run",
    )


def test_the_real_speakers_are_reported_apart_from_the_voices_never_heard():
    images = _table("image", ["t/seven/image-1.png", "t/three/image-2.png"], [[0, 1], [1, 0]])
    clips = _table(
        "audio", ["t/seven/en+m1-s150-p50.wav", "t/seven/fr-armelle.wav"], [[0, 0.9], [0.9, 0.1]]
    )
    tables = {"image": images, "audio": clips}

    assert without_real_speakers(tables)["audio"].uris == ["t/seven/en+m1-s150-p50.wav"]
    assert without_real_speakers(tables)["image"].uris == images.uris
    assert accuracy_by_source(tables)["audio->image"] == {
        "speaker:fr-armelle": 0.0,
        "voice:en": 1.0,
    }


@pytest.fixture(scope="module")
def mixed_folders(tmp_path_factory, digits) -> pathlib.Path:
    """train/ and test/ of <word>/ folders holding images, clips and words together."""
    images, labels = digits
    root = tmp_path_factory.mktemp("mixed")
    rng = np.random.default_rng(0)
    for label in range(10):
        members = rng.permutation(np.flatnonzero(labels == label))
        for split, chosen in (("train", members[:30]), ("test", members[30:35])):
            for index in chosen:
                path = root / split / WORDS[label] / f"image-{index}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(digit_png(images[index]))
    speakers = voices_per_language(3, seed=0, languages=("en", "de"))
    write_spoken_digits(root / "train", speakers["en"][:2] + speakers["de"][:2])
    write_spoken_digits(root / "test", speakers["en"][2:] + speakers["de"][2:])
    write_digit_words(root / "train", ("en", "de", "fr", "es"))
    write_digit_words(root / "test", ("it",))
    return root


@pytest.fixture(scope="module")
def joint_model(tmp_path_factory, mixed_folders) -> pathlib.Path:
    model = tmp_path_factory.mktemp("joint") / "model"
    status = cli.main(
        ["train", "--modality", "joint", "--input", f"{mixed_folders}/train/**",
         "--char-ngrams", "2:4", "--output", str(model), "--seed", "0"]
    )  # fmt: skip
    assert status == 0
    return model


@pytest.fixture(scope="module")
def joint_table(tmp_path_factory, joint_model, mixed_folders) -> pathlib.Path:
    out = tmp_path_factory.mktemp("joint_table") / "out"
    flags = ["--model", str(joint_model), "--input", f"{mixed_folders}/test/**"]
    assert cli.main(["embed", *flags, "--output", str(out)]) == 0
    return out


def test_the_joint_model_records_each_modality_and_its_place(joint_model):
    info = read_model_info(str(joint_model))

    assert info.modality == "joint" and sorted(info.labels) == sorted(WORDS)
    assert sorted(info.parts) == ["audio", "image", "text"]
    assert info.parts["image"]["id_offset"] == 0 and info.parts["image"]["vocabulary_size"] == 784
    assert info.parts["audio"]["id_offset"] == 784
    assert info.parts["text"]["featurizer"]["char_ngrams"] == "2:4"
    text = info.parts["text"]
    assert info.vocabulary_size == text["id_offset"] + text["vocabulary_size"]
    # Modalities of fewer than 100 rows fit on all of them; the images lose 10% to validation.
    fit = info.training["examples_fit_by_modality"]
    assert fit["audio"] == fit["text"] == 40 and 250 < fit["image"] < 300


def test_one_table_has_every_modality_at_one_width_with_the_shared_centroids(
    joint_model, joint_table
):
    info = read_model_info(str(joint_model))
    record = read_run_record(str(joint_table))
    model_centroids = read_centroids(str(joint_model / "centroids.parquet"))

    assert record["inputs_seen"] == record["rows_written"] == 50 + 20 + 10
    for modality, rows in (("image", 50), ("audio", 20), ("text", 10)):
        table = load_table(str(joint_table), modality)
        assert len(table) == rows and table.embeddings.shape[1] == info.embedding_dim
        assert table.model_version == info.model_version
        centroids = read_centroids(
            str(joint_table / "centroids" / f"modality={modality}" / "centroids.parquet")
        )
        np.testing.assert_array_equal(centroids, model_centroids)
        nearest, _ = nearest_centroids(table.embeddings, model_centroids)
        np.testing.assert_array_equal(table.cluster_ids, nearest)
    parts = pq.read_table(joint_table / "embeddings").column("modality").unique().to_pylist()
    assert sorted(parts) == ["audio", "image", "text"]


def test_a_sound_queries_pictures_and_a_word_queries_sounds(joint_table, mixed_folders):
    clip = sorted((mixed_folders / "test" / "seven").glob("*.wav"))[0]
    clips = load_table(str(joint_table), "audio")

    by_file = similar(str(joint_table), str(clip), k=5, modality="image")
    by_id = similar(str(joint_table), clips.ids[clips.uris.index(str(clip))], k=5, modality="image")
    words = similar(
        str(joint_table), str(mixed_folders / "test" / "seven" / "it.txt"), k=3, modality="audio"
    )

    assert all(n.uri.endswith(".png") for n in by_file) and len(by_file) == 5
    # The raw file is featurized and embedded exactly as the embed job embedded it.
    assert [n.id for n in by_file] == [n.id for n in by_id]
    np.testing.assert_allclose(
        [n.distance for n in by_file], [n.distance for n in by_id], atol=1e-5
    )
    assert all(n.uri.endswith(".wav") for n in words)


def test_the_projector_shows_every_modality_together_with_a_modality_column(joint_table, tmp_path):
    from embedbeam.pipeline.queries.projector import write_projector

    written = write_projector(str(joint_table), str(tmp_path))

    assert written == ["audio", "image", "text", "all"]
    lines = (tmp_path / "all" / "metadata.tsv").read_text(encoding="utf-8").splitlines()
    modalities = [line.split("\t")[1] for line in lines[1:]]
    assert lines[0].split("\t")[:2] == ["label", "modality"]
    assert (modalities.count("audio"), modalities.count("image"), modalities.count("text")) == (
        20, 50, 10,
    )  # fmt: skip
    assert len((tmp_path / "all" / "tensors.tsv").read_text().splitlines()) == 80


def test_the_report_shows_the_cross_modal_matrix(joint_table, tmp_path):
    from embedbeam.pipeline.queries.cross_modal import cross_modal_matrix, one_space
    from embedbeam.pipeline.queries.report import write_report

    write_report(str(joint_table), str(tmp_path / "report.html"))

    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    matrix = cross_modal_matrix(one_space(str(joint_table)))
    assert "<section id='one-space'>" in page and "scatter-one-space" in page
    assert f"<td>audio</td><td>-</td><td>{matrix[('audio', 'image')]:.3f}</td>" in page
