"""Ray Data doing embedbeam's work: read_binary_files -> map_batches on an actor pool -> Parquet.

Each of 2 actors (one per core) loads the same SavedModel once and, per batch
of files, featurizes them with embedbeam's batch featurizer, calls `embed`
(batches bounded by non-zeros, as embedbeam does), assigns the nearest
centroid and returns an Arrow table in the output contract's schema, which
`write_parquet` writes. The clock includes starting Ray on this machine.
"""

from __future__ import annotations

import os

import numpy as np

BATCH_SIZE = 256
READ_CPUS = {"num_cpus": 0.5}
ACTOR_CPUS = 0.75  # 2 actors + reads = the 2 cores


class EmbedFiles:
    """A Ray actor: batch of {"bytes", "path"} -> Arrow table of embedding rows."""

    def __init__(self, model_dir: str) -> None:
        import tensorflow as tf

        from embedbeam.pipeline.model.model_dir import CENTROIDS, read_model_info
        from embedbeam.transforms.sparse.modalities import make_batch_featurizer
        from embedbeam.transforms.table.centroids import read_centroids

        self._info = read_model_info(model_dir)
        self._featurize = make_batch_featurizer(
            self._info.modality, self._info.featurizer, model_dir
        )
        self._model = tf.saved_model.load(model_dir)
        self._centroids = read_centroids(os.path.join(model_dir, CENTROIDS))

    def __call__(self, batch: dict[str, np.ndarray]):
        import pyarrow as pa

        from embedbeam.transforms.assign_clusters import nearest_centroids
        from embedbeam.transforms.common.records import id_for_uri
        from embedbeam.transforms.encode_embeddings import default_max_batch_nnz, max_batch_rows
        from embedbeam.transforms.table.layout import embeddings_schema

        result = self._featurize(list(batch["bytes"]))
        embed = self._model.signatures["embed"]
        vectors = np.concatenate(
            [
                embed(ids=part.ids, weights=part.weights, row_splits=part.row_splits)[
                    "embedding"
                ].numpy()
                for part in result.rows.split_by_nnz(
                    default_max_batch_nnz(self._info.vocabulary_size),
                    max_batch_rows(self._info.vocabulary_size),
                )
            ]
        )
        nearest, distances = nearest_centroids(vectors, self._centroids)
        uris = [os.path.abspath(path) for path in batch["path"][result.kept]]
        return pa.table(
            {
                "id": [id_for_uri(uri) for uri in uris],
                "uri": uris,
                "label": [os.path.basename(os.path.dirname(uri)) for uri in uris],
                "embedding": pa.FixedSizeListArray.from_arrays(
                    pa.array(vectors.ravel()), self._info.embedding_dim
                ),
                "cluster_id": pa.array(nearest, pa.int32()),
                "cluster_distance": pa.array(distances, pa.float32()),
                "nnz": pa.array(result.rows.lengths, pa.int32()),
                "model_version": [self._info.model_version] * len(uris),
            },
            schema=embeddings_schema(self._info.embedding_dim),
        )


def ray_data_embed(model_dir: str, source: str, output: str, workers: int = 2) -> int:
    import pyarrow.parquet as pq
    import ray

    from bench.embed_images import _list_inputs

    ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
    try:
        paths = [ref.uri for ref in _list_inputs(source)]
        (
            # Reads and actors share the cores: actors holding a whole CPU each would
            # starve the read tasks (Ray Data then waits forever on its resource budget).
            ray.data.read_binary_files(paths, include_paths=True, ray_remote_args=READ_CPUS)
            .map_batches(
                EmbedFiles,
                fn_constructor_args=(model_dir,),
                concurrency=workers,
                num_cpus=ACTOR_CPUS,
                batch_size=BATCH_SIZE,
                batch_format="numpy",
            )
            .write_parquet(output)
        )
    finally:
        ray.shutdown()
    return sum(
        pq.ParquetFile(os.path.join(output, name)).metadata.num_rows for name in os.listdir(output)
    )
