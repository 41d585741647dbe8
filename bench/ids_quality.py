"""Categorical ids on real Debian package metadata: 5-NN accuracy against the majority rate.

Every package of the ten largest sections of this machine's package index
(`apt-cache dumpavail`, via examples/debian_packages.py) is a row of the
packages it Depends on or Recommends; its Section is the label. A seeded 80/20
split of packages; 5-NN accuracy of each held-out package against the
training packages, next to the majority-class rate of the training set.

    python -m bench.ids_quality [--workdir bench/work]

Writes bench/results/ids_quality.json; bench/ids_quality.md quotes it.
"""

from __future__ import annotations

import argparse
import collections
import pathlib
import time

import numpy as np
import pyarrow.parquet as pq

from bench import embed_labelled, record
from embedbeam.pipeline import cli
from embedbeam.pipeline.model.model_dir import read_model_info
from embedbeam.pipeline.model.quality import knn_accuracy
from examples.debian_packages import dumpavail, parse_packages, top_sections, write_manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=pathlib.Path, default=pathlib.Path("bench/work"))
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    everything = args.workdir / "debian_packages.parquet"
    write_manifest(str(everything), top_sections(list(parse_packages(dumpavail())), 10))
    table = pq.read_table(everything)
    order = np.random.default_rng(0).permutation(table.num_rows)
    cut = int(0.8 * len(order))
    train_manifest, test_manifest = (
        args.workdir / "packages-train.parquet",
        args.workdir / "packages-test.parquet",
    )
    pq.write_table(table.take(order[:cut]), train_manifest)
    pq.write_table(table.take(order[cut:]), test_manifest)

    model = args.workdir / "model-ids"
    started = time.time()
    train = [
        "train",
        "--modality",
        "ids",
        "--manifest",
        str(train_manifest),
        "--output",
        str(model),
    ]
    assert 0 == cli.main([*train, "--top-k", "100000", "--overwrite"])
    train_s = time.time() - started
    info = read_model_info(str(model))
    train_x, train_y = embed_labelled(
        model, "--manifest", str(train_manifest), args.workdir / "ids-train"
    )
    test_x, test_y = embed_labelled(
        model, "--manifest", str(test_manifest), args.workdir / "ids-test"
    )
    majority_label, majority_count = collections.Counter(train_y).most_common(1)[0]
    record(
        "ids_quality",
        {
            "date": time.strftime("%Y-%m-%d"),
            "packages": table.num_rows,
            "embedded_train": len(train_y),
            "embedded_test": len(test_y),
            "vocabulary_size": info.vocabulary_size,
            "embedding_dim": info.embedding_dim,
            "train_wall_s": round(train_s, 1),
            "knn5_accuracy": round(knn_accuracy(train_x, train_y, test_x, test_y), 4),
            "majority_label": majority_label,
            "majority_rate": round(majority_count / len(train_y), 4),
        },
    )


if __name__ == "__main__":
    main()
