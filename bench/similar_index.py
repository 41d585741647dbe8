"""Which approximate index `embedbeam similar` uses for large tables, measured.

    python -m bench.similar_index [--workdir demo]

Tables (real embeddings, embedded here with the demo's full-size models, so
`make demo` first): MNIST train+test, 70,000 digits (d = 5), and every noun
and verb gloss of WordNet, 95,882 documents (text model, d = 10). For each
library (faiss-cpu HNSW, hnswlib, usearch; one build thread, so the index is
the same on every build) and exact numpy search: build time, index bytes,
recall@10 against exact search and the median latency of one query, over
1,000 query rows of the table. Writes bench/results/similar_index.json.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import tempfile
import time

import numpy as np

from bench import record
from embedbeam.pipeline import cli
from embedbeam.pipeline.queries.neighbours import (
    HNSW_EF_CONSTRUCTION,
    HNSW_EF_SEARCH,
    HNSW_M,
    build_index,
    nearest,
)
from embedbeam.pipeline.queries.table import load_table
from examples.wordnet_glosses import read_synsets

K = 10
QUERIES = 1_000
# The settings embedbeam uses, the same for every library.
M, EF_CONSTRUCTION, EF_SEARCH = HNSW_M, HNSW_EF_CONSTRUCTION, HNSW_EF_SEARCH


def _faiss(vectors: np.ndarray, path: str):
    import faiss

    index = build_index(vectors)  # embedbeam's own index
    faiss.write_index(index, path)
    return lambda query: index.search(query[None, :], K)[1][0]


def _hnswlib(vectors: np.ndarray, path: str):
    import hnswlib

    index = hnswlib.Index(space="l2", dim=vectors.shape[1])
    index.init_index(len(vectors), ef_construction=EF_CONSTRUCTION, M=M, random_seed=0)
    index.set_num_threads(1)
    index.add_items(vectors, np.arange(len(vectors)))
    index.set_ef(EF_SEARCH)
    index.save_index(path)
    return lambda query: index.knn_query(query, K)[0][0]


def _usearch(vectors: np.ndarray, path: str):
    from usearch.index import Index

    index = Index(
        ndim=vectors.shape[1],
        metric="l2sq",
        connectivity=M,
        expansion_add=EF_CONSTRUCTION,
        expansion_search=EF_SEARCH,
    )
    index.add(np.arange(len(vectors)), vectors, threads=1)
    index.save(path)
    return lambda query: index.search(query, K).keys


def _exact(vectors: np.ndarray, path: str):
    np.save(path, vectors)
    return lambda query: nearest(vectors, query, K)[0]


LIBRARIES = {"exact numpy": _exact, "faiss HNSW": _faiss, "hnswlib": _hnswlib, "usearch": _usearch}


def measure(vectors: np.ndarray) -> dict[str, dict]:
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    queries = vectors[np.random.default_rng(0).choice(len(vectors), QUERIES, replace=False)]
    truth = [set(nearest(vectors, query, K)[0].tolist()) for query in queries]
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for name, build in LIBRARIES.items():
            path = os.path.join(folder, name.replace(" ", "_"))
            started = time.perf_counter()
            search = build(vectors, path)
            build_s = time.perf_counter() - started
            latencies, hits = [], 0
            for query, expected in zip(queries, truth, strict=True):
                started = time.perf_counter()
                found = search(query)
                latencies.append(time.perf_counter() - started)
                hits += len(expected & {int(i) for i in found})
            size = sum(
                p.stat().st_size for p in pathlib.Path(folder).glob(path.split("/")[-1] + "*")
            )
            results[name] = {
                "build_s": round(build_s, 2),
                "index_mb": round(size / 1e6, 1),
                "recall_at_10": round(hits / (K * QUERIES), 4),
                "median_query_ms": round(float(np.median(latencies)) * 1000, 3),
            }
            print(name, results[name], flush=True)
    return results


def _embed(model: pathlib.Path, source_flag: str, source: str, out: pathlib.Path) -> np.ndarray:
    if not (out / "_SUCCESS").exists():
        flags = ["--model", str(model), source_flag, source, "--output", str(out), "--overwrite"]
        assert cli.main(["embed", *flags]) == 0
    return load_table(str(out)).embeddings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=pathlib.Path, default=pathlib.Path("demo"))
    parser.add_argument("--scratch", type=pathlib.Path, default=pathlib.Path("/tmp/similar_index"))
    args = parser.parse_args()
    args.scratch.mkdir(parents=True, exist_ok=True)
    glosses = args.scratch / "glosses.jsonl"
    with glosses.open("w") as handle:
        for synset in read_synsets():
            row = {"id": f"{synset.supersense}:{synset.offset}", "text": synset.document}
            handle.write(json.dumps({**row, "label": synset.supersense}) + "\n")
    tables = {
        "mnist_70k_d5": _embed(
            args.workdir / "models/image",
            "--input",
            f"{args.workdir}/digits/*/*/*.png",
            args.scratch / "mnist",
        ),
        "wordnet_95882_d10": _embed(
            args.workdir / "models/text", "--manifest", str(glosses), args.scratch / "wordnet"
        ),
    }
    results = {
        "date": time.strftime("%Y-%m-%d"),
        "k": K,
        "queries": QUERIES,
        "hnsw": {"M": M, "ef_construction": EF_CONSTRUCTION, "ef_search": EF_SEARCH},
    }
    for name, vectors in tables.items():
        print(f"== {name}: {vectors.shape}", flush=True)
        results[name] = {"rows": len(vectors), "dim": vectors.shape[1], **measure(vectors)}
    record("similar_index", results)


if __name__ == "__main__":
    main()
