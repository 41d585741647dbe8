"""Audio end to end: train on 30 espeak-ng voices, embed 10 voices never heard in
training plus real recorded sounds and broken files, through the real CLI."""

from __future__ import annotations

import json
import pathlib
import shutil

import numpy as np
import pyarrow.dataset as ds
import pytest

from embedbeam.pipeline import cli
from embedbeam.pipeline.model.model_dir import read_model_info
from embedbeam.pipeline.model.quality import cluster_purity, leave_one_out_knn_accuracy

pytestmark = pytest.mark.slow

FREEDESKTOP_SOUNDS = pathlib.Path("/usr/share/sounds/freedesktop/stereo")


@pytest.fixture(scope="module")
def audio_run(tmp_path_factory, audio_model, spoken_digit_folders) -> pathlib.Path:
    inputs = tmp_path_factory.mktemp("audio_inputs")
    shutil.copytree(spoken_digit_folders / "test", inputs, dirs_exist_ok=True)
    shutil.copytree(FREEDESKTOP_SOUNDS, inputs / "freedesktop")
    (inputs / "broken").mkdir()
    (inputs / "broken" / "empty.wav").write_bytes(b"")
    (inputs / "broken" / "picture.mp3").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    out = tmp_path_factory.mktemp("audio_out") / "out"
    assert (
        cli.main(
            ["embed", "--model", str(audio_model), "--input", f"{inputs}/**", "--output", str(out)]
        )
        == 0
    )
    return out


def test_audio_model_records_its_grid(audio_model):
    info = read_model_info(str(audio_model))

    # 20 bands x 16 slices, two ids a cell (louder and quieter than the band's mean)
    assert (info.modality, info.vocabulary_size, info.embedding_dim) == ("audio", 640, 5)
    assert info.featurizer == {
        "mels": 20,
        "frames": 16,
        "threshold_db": -60.0,
        "max_seconds": 10.0,
        "max_windows": 24,
        "fmin": 100.0,
        "fmax": 3800.0,
        "loudness_slices_db": 40.0,
        "cells": "band_deviations",
        "trim": "samples",
    }
    assert sorted(info.labels) == sorted(
        ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    )


def test_unheard_voices_land_with_their_word(audio_run):
    table = ds.dataset(audio_run / "embeddings", partitioning="hive").to_table(
        filter=ds.field("label") != "freedesktop"
    )
    column = table.column("embedding").combine_chunks()
    embeddings = column.values.to_numpy().reshape(len(table), column.type.list_size)
    labels = np.asarray(table.column("label").to_pylist())

    assert len(table) == 100
    # Measured 2026-11-25, espeak-ng 1.51: 5-NN 0.98, purity 0.99 (training no longer
    # depends on where the files live).
    assert leave_one_out_knn_accuracy(embeddings, labels) >= 0.90
    assert cluster_purity(table.column("cluster_id").to_numpy(), labels) >= 0.80


def test_recorded_sounds_embed_and_broken_files_are_dead_letters(audio_run):
    manifest = json.loads((audio_run / "_manifest.json").read_text())
    table = ds.dataset(audio_run / "embeddings", partitioning="hive").to_table()
    dead = ds.dataset(audio_run / "dead_letter").to_table().to_pylist()
    recorded = len(list(FREEDESKTOP_SOUNDS.glob("*.oga")))

    assert table.column("label").to_pylist().count("freedesktop") == recorded
    assert {(d["uri"].rsplit("/", 1)[-1], d["error"]) for d in dead} == {
        ("empty.wav", "undecodable_audio"),
        ("picture.mp3", "undecodable_audio"),
    }
    assert manifest["inputs_seen"] == 100 + recorded + 2 == len(table) + len(dead)


@pytest.fixture
def mixed(tmp_path, digit_folders, spoken_digit_folders) -> pathlib.Path:
    """200 images of 3 and 8, 20 spoken "three" and "eight", and a text file."""
    root = tmp_path / "mixed"
    for digit in ("3", "8"):
        shutil.copytree(digit_folders / "test" / digit, root / "images" / digit)
    for word in ("three", "eight"):
        shutil.copytree(spoken_digit_folders / "test" / word, root / "speech" / word)
    (root / "notes.txt").write_text("no text model in this run")
    return root


def test_one_run_routes_each_input_to_the_model_of_its_modality(
    tmp_path, trained_model, audio_model, mixed
):
    out = tmp_path / "out"

    status = cli.main(
        ["embed", "--model", f"image={trained_model}", "--model", f"audio={audio_model}",
         "--input", f"{mixed}/**", "--output", str(out)]
    )  # fmt: skip

    assert status == 0
    manifest = json.loads((out / "_manifest.json").read_text())
    assert {m: model["rows"] for m, model in manifest["models"].items()} == {
        "image": 200,
        "audio": 20,
    }
    assert manifest["dead_letters"] == 1 and manifest["inputs_seen"] == 221
    for modality, dim in (("image", 5), ("audio", 5)):
        part = ds.dataset(out / "embeddings" / f"modality={modality}").to_table()
        centroids = ds.dataset(out / "centroids" / f"modality={modality}").to_table()
        assert part.schema.field("embedding").type.list_size == dim
        assert sum(centroids.column("size").to_pylist()) == len(part)


def test_recluster_fits_each_modality_apart_and_clamps_k_to_its_rows(
    tmp_path, trained_model, audio_model, mixed
):
    out = tmp_path / "out"

    status = cli.main(
        ["embed", "--model", f"image={trained_model}", "--model", f"audio={audio_model}",
         "--input", f"{mixed}/**", "--output", str(out), "--recluster", "30"]
    )  # fmt: skip

    assert status == 0
    models = json.loads((out / "_manifest.json").read_text())["models"]
    # 200 images: k = 30 as asked; 20 spoken words: k clamped to the 20 distinct embeddings.
    assert {m: (model["recluster"]["k"], model["clusters"]) for m, model in models.items()} == {
        "image": (30, 30),
        "audio": (20, 20),
    }
    assert models["audio"]["recluster"]["k_requested"] == 30
    for modality in ("image", "audio"):
        part = ds.dataset(out / "embeddings" / f"modality={modality}").to_table()
        centroids = ds.dataset(out / "centroids" / f"modality={modality}").to_table()
        sizes = np.bincount(part.column("cluster_id").to_numpy(), minlength=len(centroids))
        assert centroids.column("size").to_pylist() == sizes.tolist()


def test_a_model_named_for_the_wrong_modality_is_refused(tmp_path, audio_model, capsys):
    status = cli.main(
        ["embed", "--model", f"image={audio_model}", "--input", f"{audio_model}/*.json",
         "--output", str(tmp_path / "out")]
    )  # fmt: skip

    assert status == 2
    assert "holds a model for audio" in capsys.readouterr().err
