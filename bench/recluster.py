"""`embed --recluster` on full MNIST: purity next to scikit-learn's KMeans, wall time, peak RSS.

Trains (once) on the canonical 60k split like bench/mnist_quality.py, then runs
`embedbeam embed` in a fresh subprocess per run (in-process DirectRunner) and
records its wall time and peak RSS:

- quality: the 10k test split with --recluster 10 (sample bound 20,000, so all
  rows, and 2,000), and all 70k digits (a 20,000-row sample of 70,000); purity
  of the committed cluster ids against scikit-learn's KMeans (k = 10,
  n_init = 10, seed 0) on the same vectors read back from the table;
- memory: N = 7,000 and 10N = 70,000 digits, with and without --recluster;
  the whole job's peak RSS is mostly TensorFlow, so also the clustering
  stages alone (no model), on 30k and 300k embedded rows made from the real
  70k embeddings: Recluster against AssignClusters with fixed centroids.

    python -m bench.recluster [--workdir bench/work]
    python -m bench.recluster --stages [--baseline DIR]   # only the stage-only memory runs

Writes bench/results/recluster.json; bench/recluster.md quotes it.
"""

from __future__ import annotations

import argparse
import csv
import json
import pathlib
import platform
import subprocess
import sys
import time

import apache_beam as beam
import numpy as np
import pyarrow.dataset as ds
from sklearn.cluster import KMeans

from bench import RESULTS_DIR, record
from embedbeam.pipeline.model.quality import cluster_purity
from embedbeam.transforms.assign_clusters import AssignClusters
from embedbeam.transforms.common.records import EmbeddedBatch, InputRef
from embedbeam.transforms.recluster import Recluster
from embedbeam.transforms.table.layout import vectors
from examples.demo import materialize

REPO = pathlib.Path(__file__).resolve().parents[1]
K = 10
SEED = 0
SHARD_ROWS = 10_000
# Runs one embed job and reports the process's own peak RSS (in-process DirectRunner:
# the whole pipeline lives in this one process).
_CHILD = (
    "import resource, sys\n"
    "from embedbeam.pipeline import cli\n"
    "status = cli.main(sys.argv[1:])\n"
    "print('peak_rss_kb', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    "sys.exit(status)\n"
)


def write_manifest(path: pathlib.Path, images: list[pathlib.Path]) -> pathlib.Path:
    """CSV manifest (uri, label from the folder) of the given PNGs."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["uri", "label"])
        writer.writerows([str(image), image.parent.name] for image in images)
    return path


def run_embed(
    model: pathlib.Path,
    manifest: pathlib.Path,
    out: pathlib.Path,
    *flags: str,
    tree: pathlib.Path | None = None,
) -> dict:
    """One `embedbeam embed` in a fresh process (of this checkout's code or of `tree`'s):
    wall time, rows per second and peak RSS."""
    args = ["embed", "--model", str(model), "--manifest", str(manifest), "--output", str(out)]
    started = time.time()
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, *args, "--overwrite", *flags],
        capture_output=True,
        text=True,
        check=True,
        cwd=tree,  # `-c` imports pipeline and transforms from the working directory
    )
    wall = time.time() - started
    peak_kb = int(done.stdout.split("peak_rss_kb")[-1].split()[0])
    rows = json.loads((out / "_manifest.json").read_text())["rows_written"]
    return {
        "flags": " ".join(flags),
        "rows": rows,
        "wall_s": round(wall, 1),
        "rows_per_s": round(rows / wall),
        "peak_rss_mb": peak_kb // 1024,
    }


def quality(out: pathlib.Path) -> dict:
    """Purity of the committed ids vs scikit-learn KMeans on the same vectors."""
    table = ds.dataset(out / "embeddings", partitioning="hive").to_table()
    embeddings = vectors(table.column("embedding"))
    labels = np.asarray(table.column("label").to_pylist())
    started = time.time()
    reference = KMeans(n_clusters=K, n_init=10, random_state=SEED).fit(embeddings)
    sklearn_s = time.time() - started
    refit = json.loads((out / "_manifest.json").read_text())["models"]["image"]["recluster"]
    return {
        "rows": len(table),
        "purity_recluster": round(cluster_purity(table.column("cluster_id").to_numpy(), labels), 4),
        "purity_sklearn_kmeans_all_rows": round(cluster_purity(reference.labels_, labels), 4),
        "inertia_recluster": round(refit["inertia"], 1),
        "inertia_sklearn_kmeans_all_rows": round(float(reference.inertia_), 1),
        "sklearn_kmeans_fit_s": round(sklearn_s, 2),
        "refit": refit,
    }


def embedded_batch(shard: int, table_dir: str) -> EmbeddedBatch:
    """Shard `shard` of a stream of embedded rows, as one batch: real embeddings, shifted per shard."""
    embeddings = vectors(ds.dataset(table_dir, partitioning="hive").to_table().column("embedding"))
    start = shard * SHARD_ROWS % len(embeddings)
    chosen = embeddings[start : start + SHARD_ROWS] + 1e-3 * shard
    refs = tuple(
        InputRef(f"{shard}-{i}", f"/bench/{shard}/{i}", None, "image") for i in range(len(chosen))
    )
    return EmbeddedBatch(refs, np.ones(len(chosen), np.int64), chosen.astype(np.float32))


def stage_memory(rows: int, mode: str, table_dir: str) -> None:
    """Runs only the clustering stage on `rows` generated rows; prints the rows and peak RSS.

    Recluster stages its rows as Parquet shards (unassigned, then assigned) in a
    temporary folder, as the embed job does under `_staging`; AssignClusters
    with fixed centroids writes nothing, its rows are only counted.
    """
    import resource
    import tempfile

    with tempfile.TemporaryDirectory() as staging, beam.Pipeline() as pipeline:
        embedded = (
            pipeline | beam.Create(range(rows // SHARD_ROWS)) | beam.Map(embedded_batch, table_dir)
        )
        if mode == "recluster":
            shards, _ = embedded | Recluster(
                "image", K, SEED, 5, "bench", f"{staging}/unassigned", f"{staging}/assigned"
            )
            counted = shards | beam.Map(lambda shard: sum(shard.cluster_sizes))
        else:
            centroids = np.eye(K, 5, dtype=np.float32)
            assigned = embedded | AssignClusters(lambda: centroids, "bench")
            counted = assigned | beam.Map(lambda row: 1)
        _ = counted | beam.CombineGlobally(sum) | beam.Map(lambda n: print("rows", n))
    print("peak_rss_kb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def run_stage(rows: int, mode: str, table_dir: pathlib.Path, tree: pathlib.Path | None) -> dict:
    """One stage-only run in a fresh process, of this checkout's code or of `tree`'s."""
    started = time.time()
    done = subprocess.run(
        [sys.executable, "-m", "bench.recluster", "--stage-only", str(rows), mode, str(table_dir)],
        capture_output=True,
        text=True,
        check=True,
        cwd=tree,  # `-m` imports bench, pipeline and transforms from the working directory
    )
    wall = time.time() - started
    peak_kb = int(done.stdout.split("peak_rss_kb")[-1].split()[0])
    assert int(done.stdout.split("rows")[-1].split()[0]) == rows, done.stdout
    return {
        "rows": rows,
        "stage": mode,
        "wall_s": round(wall, 1),
        "rows_per_s": round(rows / wall),
        "peak_rss_mb": peak_kb // 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=pathlib.Path, default=pathlib.Path("bench/work"))
    parser.add_argument("--stage-only", nargs=3, metavar=("ROWS", "MODE", "TABLE"))
    parser.add_argument(
        "--stages", action="store_true", help="Only re-measure the stage-only memory runs."
    )
    parser.add_argument(
        "--jobs",
        action="store_true",
        help="Only re-measure the whole embed jobs with --recluster (7k, 70k digits; needs the "
        "model and manifests of a full run).",
    )
    parser.add_argument(
        "--baseline",
        type=pathlib.Path,
        help="With --stages or --jobs: also run the code of this checkout (e.g. "
        "`git archive main | tar -x -C DIR`), each run right after ours.",
    )
    args = parser.parse_args()
    if args.stage_only:
        rows, mode, table_dir = args.stage_only
        return stage_memory(int(rows), mode, table_dir)
    work = args.workdir.resolve()
    table_70k = work / "recluster-mnist_70k" / "embeddings"
    recluster = ["--recluster", str(K), "--recluster-seed", str(SEED)]
    if args.stages or args.jobs:
        results = json.loads((RESULTS_DIR / "recluster.json").read_text())
        now = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        if args.stages:
            results["stage_memory_date"] = now
            results["stage_memory"] = stage_runs(table_70k, args.baseline)
        if args.jobs:
            results["recluster_jobs_date"] = now
            results["recluster_jobs"] = job_runs(work, recluster, args.baseline)
        return record("recluster", results)
    train_dir = materialize(work / "digits", "train", None)
    test_dir = materialize(work / "digits", "test", None)
    model = work / "model-dauto"
    if not (model / "model.json").exists():
        # In a child, so that training's memory is not held by the process that measures
        # (bench/README.md, 'Why the code is this way').
        train = ["train", "--input", f"{train_dir}/*/*.png", "--output", str(model), "--overwrite"]
        subprocess.run([sys.executable, "-m", "embedbeam.pipeline.cli.command", *train], check=True)
    test_images = sorted(test_dir.glob("*/*.png"))
    all_images = sorted([*train_dir.glob("*/*.png"), *test_images])
    shuffled = [all_images[i] for i in np.random.default_rng(SEED).permutation(len(all_images))]
    manifests = {
        "test_10k": write_manifest(work / "test_10k.csv", test_images),
        "mnist_7k": write_manifest(work / "mnist_7k.csv", shuffled[:7_000]),
        "mnist_70k": write_manifest(work / "mnist_70k.csv", shuffled),
    }
    results = {"date": time.strftime("%Y-%m-%d"), "machine": platform.platform()}

    results["quality"] = []
    for name, extra in (
        ("test_10k", []),
        ("test_10k", ["--recluster-sample", "2000"]),
        ("mnist_70k", []),
    ):
        out = work / f"recluster-{name}"
        run = run_embed(model, manifests[name], out, *recluster, *extra)
        results["quality"].append({"inputs": name, **run, **quality(out)})

    results["memory"] = []
    for name in ("mnist_7k", "mnist_70k"):
        for flags in ([], recluster):
            run = run_embed(model, manifests[name], work / f"memory-{name}", *flags)
            results["memory"].append({"inputs": name, **run})
    results["stage_memory"] = stage_runs(table_70k)
    record("recluster", results)


def job_runs(work: pathlib.Path, recluster: list[str], baseline: pathlib.Path | None) -> list[dict]:
    """The whole embed job with --recluster on 7k and 70k digits, ours and the baseline's."""
    trees = [("this", REPO), *([(str(baseline), baseline)] if baseline else [])]
    return [
        {"code": code, "inputs": name, **run_embed(
            work / "model-dauto", work / f"{name}.csv", work / f"memory-{name}", *recluster,
            tree=tree,
        )}
        for name in ("mnist_7k", "mnist_70k")
        for code, tree in trees
    ]  # fmt: skip


def stage_runs(table_dir: pathlib.Path, baseline: pathlib.Path | None = None) -> list[dict]:
    """Each size and stage; with `baseline` (a checkout of another commit) its Recluster
    too, run right after ours so both see the same machine load."""
    runs = []
    for rows in (30_000, 300_000):
        for mode in ("assign_model_centroids", "recluster"):
            runs.append({"code": "this", **run_stage(rows, mode, table_dir, REPO)})
            if baseline and mode == "recluster":
                runs.append({"code": str(baseline), **run_stage(rows, mode, table_dir, baseline)})
    return runs


if __name__ == "__main__":
    main()
