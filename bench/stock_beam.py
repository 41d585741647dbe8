"""The stock Beam way: RunInference with Beam's own TFModelHandlerNumpy on dense inputs.

Beam's TensorFlow handlers batch dense, equal-length examples (numpy.stack)
and call the loaded model on them, so the model has to take a dense input.
Our SavedModel's `embed` signature takes ragged ids/weights/row_splits, which
no stock handler can call; `dense_model` exports, once, a tf.function over the
same weights: [batch, cells] float32 -> its non-zero cells as ids and weights
-> the same `embed`. Same features (embedbeam's featurizer, densified), same
weights, same Parquet schema; only the plumbing is stock.
"""

from __future__ import annotations

import os
import pathlib

import numpy as np


def dense_model(model_dir: str) -> str:
    """`<model_dir>-dense`: a SavedModel whose serving call takes dense [batch, cells] inputs."""
    target = model_dir.rstrip("/") + "-dense"
    if os.path.exists(os.path.join(target, "saved_model.pb")):
        return target
    import tensorflow as tf

    from embedbeam.pipeline.model.model_dir import read_model_info
    from embedbeam.transforms.sparse.modalities import vocabulary_size

    info = read_model_info(model_dir)
    cells = vocabulary_size(info.modality, info.featurizer)

    class DenseEncoder(tf.Module):
        def __init__(self, sparse) -> None:
            super().__init__()
            self.sparse = sparse

        @tf.function(input_signature=[tf.TensorSpec([None, cells], tf.float32)])
        def __call__(self, dense):
            active = tf.where(dense > 0)
            counts = tf.math.bincount(
                tf.cast(active[:, 0], tf.int32), minlength=tf.shape(dense)[0], dtype=tf.int64
            )
            return self.sparse.signatures["embed"](
                ids=active[:, 1],
                weights=tf.gather_nd(dense, active),
                row_splits=tf.concat([[0], tf.cumsum(counts)], axis=0),
            )["embedding"]

    module = DenseEncoder(tf.saved_model.load(model_dir))
    tf.saved_model.save(module, target, signatures={"serving_default": module.__call__})
    return target


def stock_run_inference(model_dir: str, pattern: str, output: str) -> int:
    """MatchFiles -> ReadMatches -> densify -> RunInference -> nearest centroid -> Parquet."""
    import apache_beam as beam
    import pyarrow.parquet as pq
    from apache_beam.io import fileio
    from apache_beam.ml.inference.base import KeyedModelHandler, RunInference
    from apache_beam.ml.inference.tensorflow_inference import TFModelHandlerNumpy

    from embedbeam.pipeline.model.model_dir import CENTROIDS, read_model_info
    from embedbeam.transforms.sparse.modalities import make_featurizer, vocabulary_size
    from embedbeam.transforms.table.centroids import read_centroids
    from embedbeam.transforms.table.layout import embeddings_schema

    info = read_model_info(model_dir)
    featurize = make_featurizer(info.modality, info.featurizer)
    cells = vocabulary_size(info.modality, info.featurizer)
    centroids = read_centroids(os.path.join(model_dir, CENTROIDS))
    handler = KeyedModelHandler(TFModelHandlerNumpy(dense_model(model_dir)))
    with beam.Pipeline() as p:
        _ = (
            p
            | "MatchFiles" >> fileio.MatchFiles(pattern)
            | "ReadMatches" >> fileio.ReadMatches()
            | "Densify" >> beam.FlatMap(_densified, featurize, cells)
            | "RunInference" >> RunInference(handler)
            | "ToRecord" >> beam.Map(_record, centroids, info.model_version)
            | "WriteToParquet"
            >> beam.io.WriteToParquet(
                os.path.join(output, "part"),
                embeddings_schema(info.embedding_dim),
                file_name_suffix=".parquet",
                codec="zstd",
            )
        )
    return sum(pq.ParquetFile(path).metadata.num_rows for path in pathlib.Path(output).glob("*"))


def _densified(readable_file, featurize, cells: int):
    from embedbeam.transforms.sparse import InvalidInput

    try:
        features = featurize(readable_file.read())
    except InvalidInput:
        return
    dense = np.zeros(cells, np.float32)
    dense[features.ids] = features.weights
    yield readable_file.metadata.path, dense


def _record(keyed, centroids: np.ndarray, model_version: str) -> dict:
    from embedbeam.transforms.assign_clusters import nearest_centroid
    from embedbeam.transforms.common.records import id_for_uri

    uri, result = keyed
    embedding = np.asarray(result.inference, np.float32)
    cluster_id, distance = nearest_centroid(embedding, centroids)
    return {
        "id": id_for_uri(uri),
        "uri": uri,
        "label": os.path.basename(os.path.dirname(uri)),
        "embedding": embedding,
        "cluster_id": cluster_id,
        "cluster_distance": distance,
        "nnz": int(np.count_nonzero(result.example)),
        "model_version": model_version,
    }
