"""EncodeEmbeddings and AssignClusters in a TestPipeline, against a really trained model."""

from __future__ import annotations

import functools

import apache_beam as beam
import numpy as np
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from embedbeam.pipeline.model.model_dir import CENTROIDS, read_model_info
from embedbeam.transforms.assign_clusters import AssignClusters, nearest_centroid
from embedbeam.transforms.common.records import EmbeddingRows, FeaturizedBatch, InputRef
from embedbeam.transforms.encode_embeddings import EncodeEmbeddings
from embedbeam.transforms.sparse import SparseRows
from embedbeam.transforms.sparse.image import featurize_image
from embedbeam.transforms.table.centroids import read_centroids
from embedbeam.transforms.table.layout import vectors
from examples.digits import digit_png


def test_nearest_centroid_is_the_euclidean_closest():
    centroids = np.array([[0.0, 0.0], [3.0, 4.0], [10.0, 0.0]], np.float32)

    assert nearest_centroid(np.array([3.0, 3.0], np.float32), centroids) == (1, 1.0)


def test_each_digit_is_embedded_and_assigned_a_cluster(trained_model, digits):
    images, labels = digits
    info = read_model_info(str(trained_model))
    centroids = read_centroids(str(trained_model / CENTROIDS))
    picks = [[0, 2500], [4999]]  # two featurized batches
    batches = [
        FeaturizedBatch(
            "image",
            tuple(InputRef(f"id{i}", f"/digits/{i}.png", str(labels[i]), "image") for i in pick),
            SparseRows.stack([featurize_image(digit_png(images[i])) for i in pick]),
        )
        for pick in picks
    ]
    expected = [
        (ref.id, ref.label, int(nnz))
        for batch in batches
        for ref, nnz in zip(batch.refs, batch.rows.lengths, strict=True)
    ]

    def check(rows: EmbeddingRows):
        assert rows.modality == "image"
        embeddings = vectors(rows.records.column("embedding"))
        assert embeddings.shape[1] == info.embedding_dim and embeddings.dtype == np.float32
        for row, embedding in zip(rows.records.to_pylist(), embeddings, strict=True):
            cluster_id, distance = nearest_centroid(embedding, centroids)
            assert (row["cluster_id"], row["model_version"]) == (cluster_id, info.model_version)
            assert np.isclose(row["cluster_distance"], distance)
            yield row["id"], row["label"], row["nnz"]

    with TestPipeline() as p:
        embedded, failures = (
            p | beam.Create(batches) | EncodeEmbeddings(str(trained_model), max_batch_nnz=200)
        )
        rows = embedded | AssignClusters(
            "image",
            functools.partial(read_centroids, str(trained_model / CENTROIDS)),
            info.model_version,
        )

        assert_that(rows | beam.FlatMap(check), equal_to(expected), label="rows")
        assert_that(failures, equal_to([]), label="no failures")


def test_a_batch_the_model_rejects_makes_every_input_in_it_a_dead_letter(trained_model):
    refs = tuple(InputRef(f"id{i}", f"/in/{i}.png", None, "image") for i in range(2))
    out_of_vocabulary = SparseRows(  # feature id 10**6 is far outside the 784-cell grid
        np.array([3, 10**6], np.int64), np.ones(2, np.float32), np.array([0, 1, 2], np.int64)
    )

    with TestPipeline() as p:
        embedded, failures = (
            p
            | beam.Create([FeaturizedBatch("image", refs, out_of_vocabulary)])
            | EncodeEmbeddings(str(trained_model), max_batch_nnz=1000)
        )

        assert_that(embedded, equal_to([]), label="nothing embedded")
        assert_that(
            failures | beam.Map(lambda letter: (letter.uri, letter.stage)),
            equal_to([("/in/0.png", "encode"), ("/in/1.png", "encode")]),
            label="dead letters",
        )
