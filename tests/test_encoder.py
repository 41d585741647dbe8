"""The encoder and its SavedModel, tested with no pipeline: tiny, seeded, real digits."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from embedbeam.pipeline.model import encoder as encoder_module
from embedbeam.pipeline.model.encoder import (
    SparseEncoder,
    TrainingConfig,
    embed_rows,
    fit_encoder,
    save_encoder,
)
from embedbeam.pipeline.model.training import auto_embedding_dim
from embedbeam.transforms.common.records import FeaturizedBatch, InputRef
from embedbeam.transforms.encode_embeddings import SparseEncoderModelHandler
from embedbeam.transforms.sparse import SparseRows
from embedbeam.transforms.sparse.image import featurize_image
from examples.digits import digit_png


@pytest.fixture(scope="module")
def digit_rows(digits, digit_split):
    images, labels = digits
    train, _ = digit_split
    rows = SparseRows.stack([featurize_image(digit_png(images[i])) for i in train[::3]])
    return rows, labels[train[::3]]


@pytest.fixture(scope="module")
def tiny_saved_model(tmp_path_factory, digit_rows):
    rows, labels = digit_rows
    encoder = fit_encoder(rows, labels, 784, 4, 10, TrainingConfig(epochs=2, seed=1))
    directory = tmp_path_factory.mktemp("tiny") / "model"
    save_encoder(encoder, str(directory))
    return directory


@pytest.mark.parametrize("ids, dim", [(784, 5), (500_000, 27), (3, 2), (20_000, 12)])
def test_auto_width_is_the_fourth_root_rule(ids, dim):
    assert auto_embedding_dim(ids) == dim


def test_training_is_seeded_and_deterministic(digit_rows):
    rows, labels = digit_rows
    config = TrainingConfig(epochs=2, seed=3)

    first = fit_encoder(rows, labels, 784, 4, 10, config)
    second = fit_encoder(rows, labels, 784, 4, 10, config)

    np.testing.assert_array_equal(first.table.numpy(), second.table.numpy())


def test_saved_model_has_embed_and_serving_signatures(tiny_saved_model, digit_rows):
    rows, _ = digit_rows
    loaded = tf.saved_model.load(str(tiny_saved_model))
    batch = rows.take(np.arange(3))

    embedding = loaded.signatures["embed"](
        ids=batch.ids, weights=batch.weights, row_splits=batch.row_splits
    )["embedding"]
    probabilities = loaded.signatures["serving_default"](
        ids=batch.ids, weights=batch.weights, row_splits=batch.row_splits
    )["probabilities"]

    assert embedding.shape == (3, 4) and embedding.dtype == tf.float32
    np.testing.assert_allclose(probabilities.numpy().sum(axis=1), 1.0, rtol=1e-5)


def test_a_row_embeds_to_the_same_bytes_alone_or_in_any_batch(tiny_saved_model, digit_rows):
    rows, _ = digit_rows
    embed = tf.saved_model.load(str(tiny_saved_model)).signatures["embed"]

    in_batch = embed_rows(embed, rows.take(np.arange(50)), batch_size=50)
    alone = np.concatenate([embed_rows(embed, rows.take(np.array([i]))) for i in range(50)])

    assert in_batch.tobytes() == alone.tobytes()


def test_rows_embed_a_few_at_a_time_as_they_do_all_at_once(tiny_saved_model, digit_rows):
    rows, _ = digit_rows
    embed = tf.saved_model.load(str(tiny_saved_model)).signatures["embed"]

    in_threes = embed_rows(embed, rows.take(np.arange(10)), batch_size=3)
    at_once = embed_rows(embed, rows.take(np.arange(10)), batch_size=10)
    none = embed_rows(embed, rows.take(np.arange(0)))

    assert in_threes.tobytes() == at_once.tobytes()
    assert none.shape == (0, 4)


def test_model_handler_batches_ragged_rows_without_a_pipeline(tiny_saved_model, digits):
    images, _ = digits
    handler = SparseEncoderModelHandler(str(tiny_saved_model), max_batch_nnz=300)
    model = handler.load_model()
    rows = [featurize_image(digit_png(images[i])) for i in (0, 1000, 2000, 3000, 4999)]
    assert len({row.nnz for row in rows}) == 5  # really ragged
    refs = [InputRef(f"id{i}", f"/in/{i}.png", None, "image") for i in range(5)]
    examples = [  # batches of 2 and 3 inputs
        FeaturizedBatch("image", tuple(refs[:2]), SparseRows.stack(rows[:2])),
        FeaturizedBatch("image", tuple(refs[2:]), SparseRows.stack(rows[2:])),
    ]

    results = list(handler.run_inference(examples, model))
    one_by_one = [
        handler.run_inference([FeaturizedBatch("image", (ref,), SparseRows.stack([row]))], model)[0]
        for ref, row in zip(refs, rows, strict=True)
    ]

    assert [r.refs for r in results] == [example.refs for example in examples]
    assert [r.embeddings.shape for r in results] == [(2, 4), (3, 4)]
    assert [r.nnz.tolist() for r in results] == [
        [row.nnz for row in rows[:2]],
        [row.nnz for row in rows[2:]],
    ]
    assert np.array_equal(
        np.concatenate([r.embeddings for r in results]),
        np.concatenate([r.embeddings for r in one_by_one]),
    )
    # RunInference groups examples by their non-zeros, up to the bound.
    kwargs = handler.batch_elements_kwargs()
    assert kwargs["max_batch_size"] == 300
    assert kwargs["element_size_fn"](examples[1]) == examples[1].rows.nnz


def test_small_vocabularies_are_looked_up_dense_summing_what_the_sparse_lookup_sums(
    digit_rows, monkeypatch
):
    rows, _ = digit_rows
    batch = rows.take(np.arange(20))
    # Cells the sparse lookup prunes: a negative id, a weight of zero.
    ids = np.insert(batch.ids, [0, 5], [-1, 3])
    weights = np.insert(batch.weights, [0, 5], [0.7, 0.0]).astype(np.float32)
    row_splits = batch.row_splits + np.r_[0, np.full(batch.num_rows, 2)]

    dense_sums, dense_ops = _lookup(
        SparseEncoder(784, 4, 10, TrainingConfig(seed=2)), ids, weights, row_splits
    )
    monkeypatch.setattr(encoder_module, "DENSE_LOOKUP_MAX_VOCABULARY", 0)
    sparse_sums, sparse_ops = _lookup(
        SparseEncoder(784, 4, 10, TrainingConfig(seed=2)), ids, weights, row_splits
    )

    assert "MatMul" in dense_ops and "MatMul" not in sparse_ops  # two different computations
    np.testing.assert_allclose(dense_sums, sparse_sums, atol=1e-5)


def _lookup(encoder: SparseEncoder, *rows) -> tuple[np.ndarray, set[str]]:
    """The encoder's lookup of `rows` (ids, weights, row_splits), and the ops it ran."""
    graph = tf.function(encoder.lookup).get_concrete_function(*rows).graph
    return encoder.lookup(*rows).numpy(), {operation.type for operation in graph.get_operations()}
