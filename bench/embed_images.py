"""Embedding 10,000 MNIST PNGs: embedbeam on DirectRunner next to a plain Python loop.

With --with-model DIR --files GLOB_OR_MANIFEST --name NAME, the same
comparison for any modality (audio, text files; ids manifests) and its model.

Both do the same work on the same files with the same model: read each PNG,
featurize it (transforms/sparse/image.py), run the SavedModel's `embed`
signature in batches, assign the nearest centroid, write Parquet. Each run is
a fresh subprocess; its clock starts after the heavy imports (TensorFlow,
Beam), so both sides pay model loading but not interpreter start-up. Peak RSS
is the summed RSS of the run's whole process tree (multi_processing workers
included), sampled every 20 ms. Three runs per variant, interleaved; medians.

    python -m bench.embed_images [--workdir bench/work] [--repeats 3]

Writes bench/results/embed_images.json; bench/embed_images.md quotes it.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time

import psutil

from bench import record

VARIANTS = {
    "plain loop": [],
    "embedbeam DirectRunner (in-process)": [],
    "embedbeam DirectRunner multi_processing x2": [
        "--direct_running_mode=multi_processing",
        "--direct_num_workers=2",
    ],
}
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

    from pipeline.model_dir import CENTROIDS, read_model_info
    from transforms.centroids import read_centroids
    from transforms.modalities import make_featurizer
    from transforms.read_inputs import DEFAULT_MAX_BYTES, read_bounded
    from transforms.schemas import embeddings_schema
    from transforms.sparse import InvalidInput, SparseRows

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
    from apache_beam.io.filesystems import FileSystems

    from transforms.list_inputs import (
        read_manifest_rows,
        ref_from_file_metadata,
        ref_from_manifest_row,
    )

    if _is_manifest(source):
        return [ref_from_manifest_row(row, source) for row in read_manifest_rows(source)]
    matched = FileSystems.match([source])[0].metadata_list
    return sorted(
        (ref_from_file_metadata(metadata, labels_from_folder=True) for metadata in matched),
        key=lambda ref: ref.uri,
    )


def run_variant(variant: str, model_dir: str, pattern: str, output: str) -> dict:
    """One measured run, inside this (fresh) process."""
    import apache_beam  # noqa: F401 - imported before the clock starts, as TF is
    import tensorflow  # noqa: F401
    from apache_beam.options.pipeline_options import PipelineOptions

    from pipeline.embed import embed

    started_wall, started_cpu = time.perf_counter(), time.process_time()
    if variant == "plain loop":
        items = plain_loop(model_dir, pattern, output)
    else:
        source_flag = "--manifest" if _is_manifest(pattern) else "--input"
        flags = ["--model", model_dir, source_flag, pattern, "--output", output]
        embed(PipelineOptions(flags + VARIANTS[variant]))
        items = json.loads(pathlib.Path(output, "_manifest.json").read_text())["rows_written"]
    wall = time.perf_counter() - started_wall
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "items": items,
        "wall_s": wall,
        "cpu_s": time.process_time() - started_cpu + children.ru_utime + children.ru_stime,
    }


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=pathlib.Path, default=pathlib.Path("bench/work"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--limit", type=int, default=10_000, help="How many test digits.")
    parser.add_argument(
        "--with-model", help="Another modality: a trained model directory (with --files, --name)."
    )
    parser.add_argument("--files", help="Glob of that modality's input files, or a manifest.")
    parser.add_argument("--name", default="embed_images", help="Results file: results/NAME.json.")
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    parser.add_argument("--input", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:  # a child run
        print(json.dumps(run_variant(args.variant, args.model, args.input, args.output)))
        return

    if args.with_model:
        model, pattern = pathlib.Path(args.with_model), args.files
    else:
        model, pattern = _mnist_model_and_files(args.workdir, args.limit)
    runs: dict[str, list[dict]] = {variant: [] for variant in VARIANTS}
    for repeat in range(args.repeats):
        for variant in VARIANTS:  # interleaved, so machine noise hits every variant alike
            output = args.workdir / "bench-out"
            shutil.rmtree(output, ignore_errors=True)
            command = [sys.executable, "-m", "bench.embed_images", "--variant", variant]
            command += ["--model", str(model), "--input", pattern, "--output", str(output)]
            runs[variant].append(measure_child(command))
            print(f"run {repeat + 1} {variant}: {runs[variant][-1]}", file=sys.stderr)
    loop_rate = statistics.median(r["items"] / r["wall_s"] for r in runs["plain loop"])
    summary = {}
    for variant, measured in runs.items():
        rate = statistics.median(r["items"] / r["wall_s"] for r in measured)
        summary[variant] = {
            "items": measured[0]["items"],
            "items_per_s": round(rate, 1),
            "ratio_to_plain_loop": round(rate / loop_rate, 2),
            "wall_s": round(statistics.median(r["wall_s"] for r in measured), 2),
            "cpu_s": round(statistics.median(r["cpu_s"] for r in measured), 2),
            "peak_rss_tree_mb": round(max(r["peak_rss_tree_mb"] for r in measured)),
        }
    results = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.platform()}, {os.cpu_count()} cores",
        "repeats": args.repeats,
        "variants": summary,
        "raw": runs,
    }
    record(args.name, results)


def _mnist_model_and_files(workdir: pathlib.Path, limit: int) -> tuple[pathlib.Path, str]:
    """A full-MNIST model (trained once) and a glob of `limit` test-split PNGs."""
    from pipeline import cli
    from pipeline.demo import materialize

    model = workdir / "model-dauto"
    if not (model / "model.json").exists():
        train_dir = materialize(workdir / "digits", "train", None)
        assert 0 == cli.main(["train", "--input", f"{train_dir}/*/*.png", "--output", str(model)])
    test_dir = materialize(workdir / f"digits-{limit}", "test", limit)
    return model, f"{test_dir}/*/*.png"


if __name__ == "__main__":
    main()
