"""`python -m bench`: embedbeam next to what a user would pick instead, same inputs, same model.

Variants, each a fresh child process whose clock starts after its heavy
imports (TensorFlow, Beam, Ray), so every side pays model loading, worker
start-up and Parquet writing, but not interpreter start-up:

- plain loop: one process, input after input (bench/embed_images.plain_loop);
- embedbeam in-process and multi_processing x2: `embedbeam embed` on the
  DirectRunner, raw files to committed Parquet;
- stock Beam RunInference: MatchFiles -> ReadMatches -> densify ->
  RunInference(TFModelHandlerNumpy) -> nearest centroid -> WriteToParquet,
  as Beam's docs suggest, on a dense-input wrapper of the same weights
  (bench/stock_beam.py says why);
- Ray Data: read_binary_files -> map_batches on a pool of 2 actors holding
  the same SavedModel -> write_parquet (bench/ray_data.py).

Peak RSS is the summed RSS of each run's whole process tree, sampled every
20 ms; CPU seconds are the tree's user + system time. Variants run
interleaved (run 1 of every variant, then run 2, ...), so noise from other
work on the machine hits all alike; medians of `--repeats` runs.

    python -m bench [--sizes 10000 100000] [--repeats 3] [--workdir bench/work]
        [--audio-sizes 120 5400] [--modality-set text=MODEL_DIR=GLOB ...] [--name embed_bench]

`--audio-sizes` times spoken digits (examples/spoken_digits.py, espeak-ng) with
an audio model trained once in --workdir, as the demo trains its own.

Writes bench/results/<name>.json; bench/README.md quotes it.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import shutil
import statistics
import sys
import time

from bench import RESULTS_DIR, record
from bench.embed_images import measure_child

EMBEDBEAM_FLAGS = {
    "embedbeam in-process": [],
    "embedbeam multi_processing x2": [
        "--direct_running_mode=multi_processing",
        "--direct_num_workers=2",
    ],
}
ALL_VARIANTS = ("plain loop", *EMBEDBEAM_FLAGS, "Beam RunInference (stock TF handler)", "Ray Data")
# Chosen by --variants only: embedbeam featurizing on its read-ahead thread (no child
# processes), and the loop with numpy's BLAS on one thread (its thread pool spins on a
# shared machine; librosa's mel filterbank is a matrix product).
READ_AHEAD_THREAD = "embedbeam read-ahead thread"
LOOP_ONE_BLAS_THREAD = "plain loop, one BLAS thread"
EMBEDBEAM_FLAGS[READ_AHEAD_THREAD] = ["--featurize-processes", "0"]
CHOICES = (*ALL_VARIANTS, READ_AHEAD_THREAD, LOOP_ONE_BLAS_THREAD)
# Variants that need a dense-input model: images only (a vocabulary modality would
# densify to tens of thousands of columns, which is not what anyone would run).
IMAGE_ONLY = ("Beam RunInference (stock TF handler)", "Ray Data")


def run_child(variant: str, model_dir: str, source: str, output: str) -> dict:
    """One measured run of `variant`, inside this fresh process."""
    if variant == "Beam RunInference (stock TF handler)":
        # Beam's TF handlers load with tf.keras.models.load_model; Keras 3 refuses a
        # TF SavedModel, the Keras 2 of tf-keras (installed with TFT) loads it.
        os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import apache_beam  # noqa: F401 - heavy imports before the clock starts
    import pyarrow.parquet  # noqa: F401
    import tensorflow  # noqa: F401

    started_wall, cpu_before_clock = time.perf_counter(), time.process_time()
    if variant == "plain loop":
        from bench.embed_images import plain_loop

        items, extra = plain_loop(model_dir, source, output), {}
    elif variant == LOOP_ONE_BLAS_THREAD:
        from threadpoolctl import threadpool_limits

        from bench.embed_images import plain_loop

        with threadpool_limits(1):
            items, extra = plain_loop(model_dir, source, output), {}
    elif variant in EMBEDBEAM_FLAGS:
        items, extra = _embedbeam(model_dir, source, output, EMBEDBEAM_FLAGS[variant])
    elif variant == "Ray Data":
        from bench.ray_data import ray_data_embed

        items, extra = ray_data_embed(model_dir, source, output), {}
    else:
        from bench.stock_beam import stock_run_inference

        items, extra = stock_run_inference(model_dir, source, output), {}
    wall = time.perf_counter() - started_wall
    return {"items": items, "wall_s": wall, "cpu_before_clock_s": cpu_before_clock, **extra}


def _embedbeam(model_dir: str, source: str, output: str, flags: list[str]) -> tuple[int, dict]:
    """`embedbeam embed`; also the model stage's own time, from RunInference's metrics."""
    from apache_beam.options.pipeline_options import PipelineOptions

    from bench.embed_images import _is_manifest
    from embedbeam.pipeline.jobs.embed import embed

    source_flag = "--manifest" if _is_manifest(source) else "--input"
    options = PipelineOptions(
        ["--model", model_dir, source_flag, source, "--output", output, *flags]
    )
    result = embed(options)
    items = json.loads(pathlib.Path(output, "_manifest.json").read_text())["rows_written"]
    latencies = [
        d.committed.sum
        for d in result.metrics().query()["distributions"]
        if d.key.metric.name.endswith("inference_batch_latency_micro_secs")
    ]
    return items, {"model_stage_s": sum(latencies) / 1e6 if latencies else None}


def model_only_limit(model_dir: str, source: str, repeats: int) -> dict:
    """The SavedModel's `embed` in a tight loop on pre-built batches: what the model alone allows."""
    import tensorflow as tf

    from bench.embed_images import _list_inputs
    from embedbeam.pipeline.model.model_dir import read_model_info
    from embedbeam.transforms.encode_embeddings import default_max_batch_nnz, max_batch_rows
    from embedbeam.transforms.sparse import SparseRows
    from embedbeam.transforms.sparse.modalities import make_batch_featurizer
    from embedbeam.transforms.sparse.read_bytes import DEFAULT_MAX_BYTES, read_bounded

    info = read_model_info(model_dir)
    featurize = make_batch_featurizer(info.modality, info.featurizer, model_dir)
    refs = _list_inputs(source)
    rows = SparseRows.concat(
        [
            featurize(
                [read_bounded(ref, DEFAULT_MAX_BYTES) for ref in refs[start : start + 4096]]
            ).rows
            for start in range(0, len(refs), 4096)
        ]
    )
    max_batch_nnz = default_max_batch_nnz(info.vocabulary_size)
    parts = list(rows.split_by_nnz(max_batch_nnz, max_batch_rows(info.vocabulary_size)))
    embed = tf.saved_model.load(model_dir).signatures["embed"]
    walls = []
    for _ in range(repeats):
        started = time.perf_counter()
        for part in parts:
            embed(ids=part.ids, weights=part.weights, row_splits=part.row_splits)[
                "embedding"
            ].numpy()
        walls.append(time.perf_counter() - started)
    return {
        "rows": rows.num_rows,
        "max_batch_nnz": max_batch_nnz,
        "rows_per_s": round(rows.num_rows / statistics.median(walls), 1),
    }


def measure(
    variants: tuple[str, ...], model: str, source: str, workdir: pathlib.Path, repeats: int
) -> dict:
    """Every variant `repeats` times, interleaved; the raw runs and their medians."""
    runs: dict[str, list[dict]] = {variant: [] for variant in variants}
    for repeat in range(repeats):
        for variant in variants:
            output = workdir / "bench-out"
            shutil.rmtree(output, ignore_errors=True)
            command = [sys.executable, "-m", "bench", "--child", variant, "--model", model]
            command += ["--input", source, "--output", str(output)]
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
            "cpu_s_tree": round(statistics.median(r["cpu_s_tree"] for r in measured), 2),
            "peak_rss_tree_mb": round(statistics.median(r["peak_rss_tree_mb"] for r in measured)),
        }
        stage = [r["model_stage_s"] for r in measured if r.get("model_stage_s")]
        if stage:
            summary[variant]["model_stage_rows_per_s"] = round(
                measured[0]["items"] / statistics.median(stage), 1
            )
    return {"variants": summary, "raw": runs}


def image_set(workdir: pathlib.Path, size: int) -> str:
    """A glob of `size` real MNIST PNGs: the test split, then the training split, repeated.

    MNIST has 70,000 digits; beyond that the same digits come again under other
    file names (the running index), so 100k inputs are 100k distinct files.
    """
    from examples.digits import mnist_split, write_image_folder

    folder = workdir / f"mnist-{size}"
    marker = folder / ".complete"
    if marker.exists():
        return f"{folder}/*/*.png"
    shutil.rmtree(folder, ignore_errors=True)
    written = 0
    while written < size:
        for split in ("test", "train"):
            images, labels = mnist_split(split, size - written)
            write_image_folder(images, labels, folder, indices=iter(range(written, size)))
            written += len(labels)
            if written >= size:
                break
    marker.write_text(str(size))
    return f"{folder}/*/*.png"


def audio_set(workdir: pathlib.Path, size: int) -> str:
    """A glob of `size` spoken digits (rounded up to a multiple of 10: every voice says
    every digit), espeak-ng voices seeded apart from the model's training voices."""
    from examples.spoken_digits import voices, write_spoken_digits

    folder = workdir / f"spoken-{size}"
    if not (folder / ".complete").exists():
        shutil.rmtree(folder, ignore_errors=True)
        write_spoken_digits(folder, voices(-(-size // 10), seed=1))
        (folder / ".complete").write_text(str(size))
    return f"{folder}/*/*.wav"


def _trained_audio_model(workdir: pathlib.Path) -> pathlib.Path:
    """An audio model trained on the demo's 48 training voices (examples/demo.py)."""
    from embedbeam.pipeline import cli
    from examples.demo import materialize_spoken_digits

    model = workdir / "model-audio"
    if not (model / "model.json").exists():
        spoken = materialize_spoken_digits(workdir / "spoken_digits")
        command = ["train", "--modality", "audio", "--input", f"{spoken}/train/*/*.wav"]
        assert 0 == cli.main([*command, "--output", str(model)])
    return model


def machine() -> dict:
    import psutil

    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "load_average_at_start": [round(load, 2) for load in os.getloadavg()],
    }


def _cpu_model() -> str:
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=pathlib.Path, default=pathlib.Path("bench/work"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000])
    parser.add_argument(
        "--image-model", help="A trained MNIST model directory (default: train one in --workdir)."
    )
    parser.add_argument(
        "--audio-sizes",
        type=int,
        nargs="*",
        default=[],
        help="Spoken-digit clip counts to time (plain loop and embedbeam), e.g. 120 5400.",
    )
    parser.add_argument(
        "--modality-set",
        action="append",
        default=[],
        help="Another input set as NAME=MODEL_DIR=GLOB_OR_MANIFEST (text, audio, ...); "
        "timed with the plain loop and embedbeam.",
    )
    parser.add_argument("--variants", nargs="*", default=list(ALL_VARIANTS), choices=CHOICES)
    parser.add_argument("--name", default="embed_bench", help="Results file: results/NAME.json.")
    parser.add_argument("--results-dir", type=pathlib.Path, default=RESULTS_DIR)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--input", help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(run_child(args.child, args.model, args.input, args.output)))
        return

    args.workdir.mkdir(parents=True, exist_ok=True)
    started = time.strftime("%Y-%m-%dT%H:%M:%S")
    results = {"date": started, "machine": machine(), "repeats": args.repeats, "sets": {}}
    variants = tuple(args.variants)
    if "plain loop" not in variants:
        variants = ("plain loop", *variants)
    if args.sizes:
        model = args.image_model or str(_trained_image_model(args.workdir))
        if "Beam RunInference (stock TF handler)" in variants:
            from bench.stock_beam import dense_model

            dense_model(model)  # exported once, before any clock
        for size in args.sizes:
            source = image_set(args.workdir, size)
            results["sets"][f"image-{size}"] = {
                "model_only": model_only_limit(model, source, args.repeats),
                **measure(variants, model, source, args.workdir, args.repeats),
            }
    others = tuple(v for v in variants if v not in IMAGE_ONLY)
    if args.audio_sizes:
        model = str(_trained_audio_model(args.workdir))
        for size in args.audio_sizes:
            source = audio_set(args.workdir, size)
            results["sets"][f"audio-{size}"] = measure(
                others, model, source, args.workdir, args.repeats
            )
    for spec in args.modality_set:
        name, model, source = spec.split("=", 2)
        results["sets"][name] = measure(others, model, source, args.workdir, args.repeats)
    record(args.name, results, args.results_dir)


def _trained_image_model(workdir: pathlib.Path) -> pathlib.Path:
    from bench.embed_images import _mnist_model_and_files

    model, _ = _mnist_model_and_files(workdir, 10)
    return model
