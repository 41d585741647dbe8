"""The plain loop and the measuring helpers that `python -m bench` (bench/run.py) runs.

`plain_loop` is what an engineer writes first: one process, input after
input, with embedbeam's featurizer and the same SavedModel, written with a
pyarrow Parquet writer. `measure_child` runs one variant in a fresh process
and samples its whole process tree. The numbers this script recorded before
the harness existed are in embed_images.md and embed_speed.md; bench/README.md
has the current ones.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import time

import psutil

LOOP_BATCH = 512


def plain_loop(model_dir: str, source: str, output: str) -> int:
    """What an engineer writes first: one process, one input after another.

    It lists and reads inputs with embedbeam's own helpers, so a glob of files
    and a manifest (inline ids or text) both work, exactly as in the pipeline.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    import tensorflow as tf

    from embedbeam.pipeline.model.model_dir import CENTROIDS, read_model_info
    from embedbeam.transforms.sparse import InvalidInput, SparseRows
    from embedbeam.transforms.sparse.modalities import make_featurizer
    from embedbeam.transforms.sparse.read_bytes import DEFAULT_MAX_BYTES, read_bounded
    from embedbeam.transforms.table.centroids import read_centroids
    from embedbeam.transforms.table.layout import embeddings_schema

    info = read_model_info(model_dir)
    featurize = make_featurizer(info.modality, info.featurizer, model_dir)
    embed = tf.saved_model.load(model_dir).signatures["embed"]
    centroids = read_centroids(os.path.join(model_dir, CENTROIDS))
    schema = embeddings_schema(info.embedding_dim)
    os.makedirs(output, exist_ok=True)
    refs = _list_inputs(source)
    written = 0
    with pq.ParquetWriter(
        os.path.join(output, "part-0.parquet"), schema, compression="zstd"
    ) as writer:
        for start in range(0, len(refs), LOOP_BATCH):
            batch_refs, features = [], []
            for ref in refs[start : start + LOOP_BATCH]:
                try:
                    features.append(featurize(read_bounded(ref, DEFAULT_MAX_BYTES)))
                except InvalidInput:
                    continue
                batch_refs.append(ref)
            rows = SparseRows.stack(features)
            vectors = embed(ids=rows.ids, weights=rows.weights, row_splits=rows.row_splits)[
                "embedding"
            ].numpy()
            distances = np.linalg.norm(vectors[:, None, :] - centroids[None], axis=2)
            nearest = distances.argmin(axis=1)
            table = pa.table(
                {
                    "id": [ref.id for ref in batch_refs],
                    "uri": [ref.uri for ref in batch_refs],
                    "label": [ref.label for ref in batch_refs],
                    "embedding": pa.FixedSizeListArray.from_arrays(
                        pa.array(vectors.ravel()), info.embedding_dim
                    ),
                    "cluster_id": pa.array(nearest, pa.int32()),
                    "cluster_distance": pa.array(
                        distances[np.arange(len(nearest)), nearest], pa.float32()
                    ),
                    "nnz": pa.array([f.nnz for f in features], pa.int32()),
                    "model_version": [info.model_version] * len(batch_refs),
                },
                schema=schema,
            )
            writer.write_table(table)
            written += len(batch_refs)
    return written


def _is_manifest(source: str) -> bool:
    return source.endswith((".parquet", ".csv")) or (
        source.endswith(".jsonl") and "*" not in source
    )


def _list_inputs(source: str) -> list:
    """InputRefs of a glob or a manifest, as ListInputs makes them (no Beam)."""
    from embedbeam.transforms.list_inputs import ref_from_path, refs_from_manifest
    from embedbeam.transforms.table.files import match_paths

    if _is_manifest(source):
        return list(refs_from_manifest(source))
    return sorted(
        (ref_from_path(path, labels_from_folder=True) for path in match_paths(source)),
        key=lambda ref: ref.uri,
    )


def measure_child(command: list[str]) -> dict:
    """Runs `command`, sampling its whole process tree every 20 ms.

    Adds the peak of the tree's summed RSS and the tree's CPU seconds (user +
    system of every process seen, at its last sample) minus what the child
    reports as spent before its clock started (`cpu_before_clock_s`, imports).
    """
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    root, peak, cpu_by_process = psutil.Process(child.pid), 0, {}
    while child.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
        except psutil.Error:
            break
        rss = 0
        for process in tree:
            try:
                with process.oneshot():
                    rss += process.memory_info().rss
                    times = process.cpu_times()
                cpu_by_process[process.pid, process.create_time()] = times.user + times.system
            except psutil.Error:  # a process ended between listing and reading it
                pass
        peak = max(peak, rss)
        time.sleep(0.02)
    stdout = child.stdout.read()
    child.wait()
    if child.returncode != 0:
        raise RuntimeError(f"{command} failed with status {child.returncode}")
    reported = json.loads(stdout.strip().splitlines()[-1])
    cpu_tree = sum(cpu_by_process.values()) - reported.get("cpu_before_clock_s", 0.0)
    return {**reported, "peak_rss_tree_mb": peak / 2**20, "cpu_s_tree": cpu_tree}


def _mnist_model_and_files(workdir: pathlib.Path, limit: int) -> tuple[pathlib.Path, str]:
    """A full-MNIST model (trained once) and a glob of `limit` test-split PNGs."""
    from embedbeam.pipeline import cli
    from examples.demo import materialize

    model = workdir / "model-dauto"
    if not (model / "model.json").exists():
        train_dir = materialize(workdir / "digits", "train", None)
        assert 0 == cli.main(["train", "--input", f"{train_dir}/*/*.png", "--output", str(model)])
    test_dir = materialize(workdir / f"digits-{limit}", "test", limit)
    return model, f"{test_dir}/*/*.png"
