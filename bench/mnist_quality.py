"""Embedding quality on full MNIST, through the real jobs, at d = auto and d = 3.

Trains on the canonical 60k split and embeds the 10k test split with the
`embedbeam` CLI, then reads the committed table and reports 5-NN accuracy
(leave-one-out among test embeddings) and cluster purity (k = 10).

    python -m bench.mnist_quality [--workdir bench/work]

Writes bench/results/mnist_quality.json; bench/mnist_quality.md quotes it.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import platform
import time

from bench import record
from embedbeam.pipeline import cli
from embedbeam.pipeline.queries.summary import summarize
from examples.demo import materialize


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=pathlib.Path, default=pathlib.Path("bench/work"))
    args = parser.parse_args()
    train_dir = materialize(args.workdir / "digits", "train", None)
    test_dir = materialize(args.workdir / "digits", "test", None)
    results = {"date": time.strftime("%Y-%m-%d"), "machine": platform.platform(), "runs": []}
    for dim in ("auto", "3"):
        model, out = args.workdir / f"model-d{dim}", args.workdir / f"out-d{dim}"
        started = time.time()
        assert 0 == cli.main(
            [
                "train",
                "--input",
                f"{train_dir}/*/*.png",
                "--output",
                str(model),
                "--embedding-dim",
                dim,
                "--overwrite",
            ]
        )
        train_s = time.time() - started
        assert 0 == cli.main(
            [
                "embed",
                "--model",
                str(model),
                "--input",
                f"{test_dir}/*/*.png",
                "--output",
                str(out),
                "--overwrite",
            ]
        )
        summary = summarize(str(out))
        model_info = json.loads((model / "model.json").read_text())
        results["runs"].append(
            {
                "embedding_dim": model_info["embedding_dim"],
                "train_wall_s": round(train_s, 1),
                "validation_accuracy": model_info["metrics"]["validation_accuracy"],
                "test_knn5_accuracy_leave_one_out": summary["image"]["knn5_accuracy"],
                "test_cluster_purity_k10": summary["image"]["cluster_purity"],
                "embed_items_per_s": summary["items_per_s"],
            }
        )
    record("mnist_quality", results)


if __name__ == "__main__":
    main()
