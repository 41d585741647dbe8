"""The embedding encoder: sparse input layer -> two hidden layers -> softmax.

    ids, weights --(weighted sum of one learned vector per id, + bias, relu)--> lookup [256]
    lookup --Dense(128, relu)--> hidden
    hidden --Dense(d, linear)--> bottleneck [d]        <- the stored embedding
    bottleneck --Dense(num_labels)--> logits -> softmax

The weighted sparse lookup is the first layer: for pixel ids with intensity
weights it computes exactly what a dense layer would on the full image, at the
cost of the active pixels only. The stored embedding is the d-wide linear
bottleneck in front of the logits. Measured on full MNIST at d = 5
(bench/mnist_quality.md): 5-NN accuracy 0.975 for this layer, against 0.913
when the lookup itself is d wide and stored (the earlier design, which squeezes
every input through d linear features before any non-linearity).

Plain tf.Module and tf.nn ops, not a Keras model: the SavedModel then loads
with `tf.saved_model.load` alone, independent of the installed Keras version.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping

import keras
import numpy as np
import tensorflow as tf

from embedbeam.pipeline.model.joint import Part, signature_of
from embedbeam.transforms.encode_embeddings import DENSE_LOOKUP_MAX_VOCABULARY
from embedbeam.transforms.sparse import SparseRows

_LOG = logging.getLogger(__name__)
_EPOCHS_SHOWN_EACH = 20
# Rows a lookup takes at once outside training (see _in_batches).
_ROWS_PER_CALL = 1024

_ROWS_SIGNATURE = (
    tf.TensorSpec([None], tf.int64, name="ids"),
    tf.TensorSpec([None], tf.float32, name="weights"),
    tf.TensorSpec([None], tf.int64, name="row_splits"),
)


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    epochs: int = 8
    batch_size: int = 128
    learning_rate: float = 1e-3
    lookup_units: int = 256
    hidden_units: int = 128
    seed: int = 0
    # Stop when validation loss has not improved for this many epochs, and keep
    # the best epoch's weights (text overfits within a few epochs, digits do not).
    patience: int = 2
    # Weight of a supervised-contrastive term added to the softmax loss (0: none):
    # within a batch, rows of the same label (of any modality) are pulled together.
    contrastive_weight: float = 0.0
    contrastive_temperature: float = 0.1


class _Dense(tf.Module):
    def __init__(self, fan_in: int, fan_out: int, seed: int, name: str) -> None:
        super().__init__(name=name)
        self.kernel = tf.Variable(
            keras.initializers.GlorotUniform(seed=seed)((fan_in, fan_out)), name="kernel"
        )
        self.bias = tf.Variable(tf.zeros([fan_out]), name="bias")

    def __call__(self, inputs: tf.Tensor) -> tf.Tensor:
        return tf.matmul(inputs, self.kernel) + self.bias


class SparseEncoder(tf.Module):
    """The model; `embed` and `probabilities` are its two exported signatures."""

    def __init__(
        self, vocabulary_size: int, dim: int, num_labels: int, config: TrainingConfig
    ) -> None:
        super().__init__(name="sparse_encoder")
        self.table = tf.Variable(
            keras.initializers.GlorotUniform(seed=config.seed)(
                (vocabulary_size, config.lookup_units)
            ),
            name="lookup_table",
        )
        self.lookup_bias = tf.Variable(tf.zeros([config.lookup_units]), name="lookup_bias")
        self.hidden = _Dense(config.lookup_units, config.hidden_units, config.seed + 1, "hidden")
        self.bottleneck = _Dense(config.hidden_units, dim, config.seed + 2, "bottleneck")
        self.logit_layer = _Dense(dim, num_labels, config.seed + 3, "logits")

    def lookup(self, ids: tf.Tensor, weights: tf.Tensor, row_splits: tf.Tensor) -> tf.Tensor:
        """The sparse input layer: weighted sum of the rows' id vectors, [num_rows, units].

        Over a small vocabulary (pixels, spectrogram cells) the rows are laid
        out dense and multiplied by the table: one matrix product, where the
        sparse lookup gathers a table row per non-zero (measured in
        bench/README.md, 'Why the code is this way'). Large vocabularies
        (words, package names) keep the sparse lookup, whose memory grows with
        the non-zeros only.
        """
        vocabulary_size = self.table.shape[0]
        if vocabulary_size <= DENSE_LOOKUP_MAX_VOCABULARY:
            # One empty row more: oneDNN multiplies a lone row by another kernel, whose
            # sums differ in the last bits, and a row's embedding must not depend on
            # the batch it came in.
            dense = _dense_rows(ids, weights, row_splits, vocabulary_size, extra_rows=1)
            summed = tf.matmul(dense, self.table)[:-1]
        else:
            sparse_ids = tf.RaggedTensor.from_row_splits(ids, row_splits, validate=False)
            sparse_weights = tf.RaggedTensor.from_row_splits(weights, row_splits, validate=False)
            summed = tf.nn.safe_embedding_lookup_sparse(
                self.table, sparse_ids.to_sparse(), sparse_weights.to_sparse(), combiner="sum"
            )
        return tf.nn.relu(summed + self.lookup_bias)

    def bottleneck_output(
        self, ids: tf.Tensor, weights: tf.Tensor, row_splits: tf.Tensor
    ) -> tf.Tensor:
        return self.bottleneck(tf.nn.relu(self.hidden(self.lookup(ids, weights, row_splits))))

    def logits(self, ids: tf.Tensor, weights: tf.Tensor, row_splits: tf.Tensor) -> tf.Tensor:
        return self.logit_layer(self.bottleneck_output(ids, weights, row_splits))

    @tf.function(input_signature=_ROWS_SIGNATURE)
    def embed(self, ids: tf.Tensor, weights: tf.Tensor, row_splits: tf.Tensor) -> dict:
        return {"embedding": self.bottleneck_output(ids, weights, row_splits)}

    @tf.function(input_signature=_ROWS_SIGNATURE)
    def probabilities(self, ids: tf.Tensor, weights: tf.Tensor, row_splits: tf.Tensor) -> dict:
        return {"probabilities": tf.nn.softmax(self.logits(ids, weights, row_splits))}


def _dense_rows(
    ids: tf.Tensor,
    weights: tf.Tensor,
    row_splits: tf.Tensor,
    vocabulary_size: int,
    extra_rows: int = 0,
) -> tf.Tensor:
    """[num_rows + extra_rows, vocabulary_size]: each row's weights at its ids (repeated
    ids add up), then `extra_rows` rows of zeros.

    Negative ids and weights <= 0 are left out, as `safe_embedding_lookup_sparse`
    prunes them; an id past the vocabulary fails the call, as its gather does.
    """
    tf.debugging.assert_less(
        ids, tf.constant(vocabulary_size, ids.dtype), message="feature id outside the vocabulary"
    )
    num_rows = tf.size(row_splits, out_type=tf.int64) - 1 + extra_rows
    cells = tf.ragged.row_splits_to_segment_ids(row_splits) * vocabulary_size + ids
    kept = (ids >= 0) & (weights > 0)
    dense = tf.math.unsorted_segment_sum(
        weights, tf.where(kept, cells, -1), num_rows * vocabulary_size
    )
    return tf.reshape(dense, [num_rows, vocabulary_size])


def fit_encoder(
    rows: SparseRows,
    label_ids: np.ndarray,
    vocabulary_size: int,
    dim: int,
    num_labels: int,
    config: TrainingConfig,
    validation: tuple[SparseRows, np.ndarray] | None = None,
) -> SparseEncoder:
    """Trains a SparseEncoder with Adam on softmax cross-entropy, deterministically.

    With `validation` rows, training stops early when their loss stops
    improving, and the weights of the best epoch are kept.
    """
    keras.utils.set_random_seed(config.seed)
    tf.config.experimental.enable_op_determinism()
    encoder = SparseEncoder(vocabulary_size, dim, num_labels, config)
    optimizer = keras.optimizers.Adam(learning_rate=config.learning_rate)

    @tf.function(input_signature=(*_ROWS_SIGNATURE, tf.TensorSpec([None], tf.int64)))
    def train_step(ids, weights, row_splits, labels):
        with tf.GradientTape() as tape:
            bottleneck = encoder.bottleneck_output(ids, weights, row_splits)
            logits = encoder.logit_layer(bottleneck)
            loss = tf.reduce_mean(
                tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
            )
            if config.contrastive_weight:
                loss += config.contrastive_weight * supervised_contrastive_loss(
                    bottleneck, labels, config.contrastive_temperature
                )
        gradients = tape.gradient(loss, encoder.trainable_variables)
        optimizer.apply_gradients(zip(gradients, encoder.trainable_variables, strict=True))
        return loss

    shuffler = np.random.default_rng(config.seed)
    best_loss, best_weights, best_epoch = np.inf, None, 0
    for epoch in range(1, config.epochs + 1):
        order = shuffler.permutation(rows.num_rows)
        losses = []
        for start in range(0, order.size, config.batch_size):
            batch_index = order[start : start + config.batch_size]
            batch = rows.take(batch_index)
            losses.append(
                float(
                    train_step(batch.ids, batch.weights, batch.row_splits, label_ids[batch_index])
                )
            )
        log = _LOG.info if _shows_epoch(epoch, config.epochs) else _LOG.debug
        if validation is None:
            log("epoch %d/%d: loss %.4f", epoch, config.epochs, float(np.mean(losses)))
            continue
        validation_loss = _mean_loss(encoder, *validation)
        log(
            "epoch %d/%d: loss %.4f, validation loss %.4f",
            epoch, config.epochs, float(np.mean(losses)), validation_loss,
        )  # fmt: skip
        if validation_loss < best_loss:
            best_loss, best_epoch = validation_loss, epoch
            best_weights = [variable.numpy() for variable in encoder.trainable_variables]
        elif epoch - best_epoch >= config.patience:
            break
    if best_weights is not None and best_epoch != epoch:
        _LOG.info("keeping the weights of epoch %d (lowest validation loss)", best_epoch)
        for variable, value in zip(encoder.trainable_variables, best_weights, strict=True):
            variable.assign(value)
    return encoder


def supervised_contrastive_loss(
    embeddings: tf.Tensor, labels: tf.Tensor, temperature: float
) -> tf.Tensor:
    """Khosla et al. 2020 (SupCon, "L_out") over one batch: for each row with another row of
    its label, the mean over those positives of -log softmax of its cosine similarity
    (over / temperature) against every other row of the batch."""
    unit = tf.math.l2_normalize(embeddings, axis=1)
    similarity = tf.matmul(unit, unit, transpose_b=True) / temperature
    others = 1.0 - tf.eye(tf.shape(labels)[0])
    # Every row's own similarity is left out of its denominator (a large negative, not -inf,
    # so 0 * it stays 0).
    log_probability = similarity - tf.reduce_logsumexp(
        similarity - 1e9 * (1.0 - others), axis=1, keepdims=True
    )
    positives = tf.cast(tf.equal(labels[:, None], labels[None, :]), tf.float32) * others
    counts = tf.reduce_sum(positives, axis=1)
    per_row = -tf.reduce_sum(positives * log_probability, axis=1) / tf.maximum(counts, 1.0)
    has_positive = tf.cast(counts > 0, tf.float32)
    return tf.reduce_sum(per_row * has_positive) / tf.maximum(tf.reduce_sum(has_positive), 1.0)


def _shows_epoch(epoch: int, epochs: int) -> bool:
    """Every epoch of a short fit is a progress line; of a long one (a music model's
    200), every tenth, so the console stays readable (the rest go to debug)."""
    return epochs <= _EPOCHS_SHOWN_EACH or epoch % 10 == 0


def _mean_loss(encoder: SparseEncoder, rows: SparseRows, label_ids: np.ndarray) -> float:
    logits = _in_batches(encoder.logits, rows)
    return float(
        tf.reduce_mean(
            tf.nn.sparse_softmax_cross_entropy_with_logits(labels=label_ids, logits=logits)
        )
    )


def _in_batches(
    function: Callable[[tf.Tensor, tf.Tensor, tf.Tensor], tf.Tensor],
    rows: SparseRows,
    batch_size: int = _ROWS_PER_CALL,
) -> np.ndarray:
    """`function(ids, weights, row_splits)` of all `rows`, called batch by batch (once
    for no rows, so the result keeps its width): the sparse lookup gathers lookup_units
    floats for every feature id before it sums them, so a whole training set in one
    call held gigabytes (bench/README.md, "Training memory of the joint model")."""
    parts = []
    for start in range(0, max(rows.num_rows, 1), batch_size):
        batch = rows.take(np.arange(start, min(start + batch_size, rows.num_rows)))
        parts.append(
            np.asarray(
                function(
                    tf.constant(batch.ids),
                    tf.constant(batch.weights),
                    tf.constant(batch.row_splits),
                )
            )
        )
    return np.concatenate(parts)


def embed_rows(signature, rows: SparseRows, batch_size: int = _ROWS_PER_CALL) -> np.ndarray:
    """Embeddings of all `rows`, calling an `embed` function batch by batch."""

    def embed(ids: tf.Tensor, weights: tf.Tensor, row_splits: tf.Tensor) -> tf.Tensor:
        return signature(ids=ids, weights=weights, row_splits=row_splits)["embedding"]

    return _in_batches(embed, rows, batch_size)


def predict_labels(encoder: SparseEncoder, rows: SparseRows) -> np.ndarray:
    return np.argmax(_in_batches(encoder.logits, rows), axis=1)


def save_encoder(
    encoder: SparseEncoder, directory: str, parts: Mapping[str, Part] | None = None
) -> None:
    """SavedModel with `embed` and `serving_default` (class probabilities); a joint
    model also with one `embed_<modality>` per part, which takes that modality's own ids
    and moves them to its place in the joint space."""
    signatures = {"embed": encoder.embed, "serving_default": encoder.probabilities}
    for modality, part in (parts or {}).items():
        signatures[signature_of(modality)] = _part_embed(encoder, part)
    tf.saved_model.save(encoder, directory, signatures=signatures)


def _part_embed(encoder: SparseEncoder, part: Part):
    @tf.function(input_signature=_ROWS_SIGNATURE)
    def embed(ids: tf.Tensor, weights: tf.Tensor, row_splits: tf.Tensor) -> dict:
        tf.debugging.assert_less(
            ids, tf.constant(part.vocabulary_size, ids.dtype),
            message="feature id outside the modality's vocabulary",
        )  # fmt: skip
        # Negative ids stay negative: the lookup leaves them out, as for a single modality.
        joint_ids = tf.where(ids >= 0, ids + part.id_offset, ids)
        return {"embedding": encoder.bottleneck_output(joint_ids, weights, row_splits)}

    return embed
