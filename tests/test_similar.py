"""`embedbeam similar` on a committed table: by id, by uri, by a raw file; exact search."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from embedbeam.pipeline import cli
from embedbeam.pipeline.queries.neighbours import nearest, search
from embedbeam.pipeline.queries.similar import similar
from embedbeam.pipeline.queries.table import load_table

pytestmark = pytest.mark.slow


def test_nearest_orders_by_euclidean_or_cosine_distance():
    rows = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 0.1], [0.9, 0.1]], np.float32)

    order, distances = nearest(rows, np.array([1.0, 0.0], np.float32), k=3)
    cosine_order, _ = nearest(rows, np.array([1.0, 0.0], np.float32), k=2, metric="cosine")

    assert order.tolist() == [0, 3, 2]
    np.testing.assert_allclose(distances, [0.0, np.hypot(0.1, 0.1), np.hypot(2.0, 0.1)], rtol=1e-6)
    assert cosine_order.tolist() == [0, 2]


def test_neighbours_of_an_item_are_mostly_its_own_digit(digits_table):
    table = load_table(str(digits_table))
    query = table.ids[table.labels.index("4")]

    neighbours = similar(str(digits_table), query, k=10)

    assert len(neighbours) == 10 and query not in [n.id for n in neighbours]
    assert [n.distance for n in neighbours] == sorted(n.distance for n in neighbours)
    assert sum(n.label == "4" for n in neighbours) >= 7


def test_a_raw_file_is_embedded_with_the_tables_model(digits_table, digit_folders, capsys):
    training_seven = sorted((digit_folders / "train" / "7").glob("*.png"))[0]

    status = cli.main(
        ["similar", "--embeddings", str(digits_table), "--query", str(training_seven), "-k", "5"]
    )

    lines = capsys.readouterr().out.strip().splitlines()
    assert status == 0 and len(lines) == 6  # header + 5 neighbours
    assert sum(line.split()[2] == "7" for line in lines[1:]) >= 4


def test_an_unknown_id_is_one_line(digits_table, capsys):
    status = cli.main(["similar", "--embeddings", str(digits_table), "--query", "no-such-id"])

    error = capsys.readouterr().err.strip()
    assert status == 2 and "\n" not in error and "neither an id or uri in the table" in error


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_the_index_finds_what_exact_search_finds(digits_table, tmp_path, metric):
    table = load_table(str(digits_table))
    index_file = tmp_path / "index.faiss"

    for query in table.embeddings[:50]:
        exact = nearest(table.embeddings, query, 10, metric)
        indexed = search(table.embeddings, query, 10, metric, str(index_file), use_index="always")
        np.testing.assert_array_equal(indexed[0], exact[0])
        np.testing.assert_allclose(indexed[1], exact[1], atol=1e-6)  # float32 rounding
    assert index_file.exists()  # built by the first query, read by the others


def test_the_cli_keeps_the_index_beside_the_table(digits_table, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(digits_table, copy)
    query = load_table(str(copy)).ids[0]

    outputs = []
    for use_index in ("never", "always", "always"):
        flags = ["--embeddings", str(copy), "--query", query, "--index", use_index]
        assert cli.main(["similar", *flags]) == 0
        outputs.append(capsys.readouterr().out)

    assert outputs[0] == outputs[1] == outputs[2]
    [index_file] = (copy / "_index" / "modality=image").glob("euclidean-*.faiss")
    assert index_file.name == f"euclidean-{load_table(str(copy)).run_id}.faiss"
