"""Text embeddings vs the raw tf-idf vectors they start from, on WordNet glosses.

Ten noun supersenses, balanced (300 training and 100 test glosses each, seeded).
Side by side on the same split, 5-NN accuracy of each test gloss against the
training glosses:

- embedbeam: `embedbeam train --modality text` then `embed`, Euclidean distance
  between the stored embeddings;
- raw tf-idf: scikit-learn's TfidfVectorizer over the same tokenizer, cosine
  distance (the usual bag-of-words baseline).

    python -m bench.text_quality [--workdir bench/work]

Writes bench/results/text_quality.json; bench/text_quality.md quotes it.
"""

from __future__ import annotations

import argparse
import pathlib
import time

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.neighbors import KNeighborsClassifier

from bench import embed_labelled, record
from embedbeam.pipeline import cli
from embedbeam.pipeline.model.model_dir import read_model_info
from embedbeam.pipeline.model.quality import knn_accuracy
from embedbeam.transforms.sparse.text import tokenize
from examples.wordnet_glosses import write_documents


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=pathlib.Path, default=pathlib.Path("bench/work"))
    args = parser.parse_args()
    root = args.workdir / "wordnet"
    if not root.exists():
        write_documents(root, train_per_class=300, test_per_class=100, seed=0)
    model = args.workdir / "model-text"
    started = time.time()
    assert 0 == cli.main(
        [
            "train",
            "--modality",
            "text",
            "--input",
            f"{root}/train/*/*.txt",
            "--output",
            str(model),
            "--overwrite",
        ]
    )
    train_s = time.time() - started
    train_x, train_y = embed_labelled(
        model, "--input", f"{root}/train/*/*.txt", args.workdir / "text-train"
    )
    test_x, test_y = embed_labelled(
        model, "--input", f"{root}/test/*/*.txt", args.workdir / "text-test"
    )

    train_docs, test_docs = sorted(root.glob("train/*/*.txt")), sorted(root.glob("test/*/*.txt"))
    vectorizer = TfidfVectorizer(
        tokenizer=lambda text: tokenize(text.encode()), lowercase=False, token_pattern=None
    )
    tfidf_train = vectorizer.fit_transform([p.read_text() for p in train_docs])
    tfidf_test = vectorizer.transform([p.read_text() for p in test_docs])
    baseline = KNeighborsClassifier(n_neighbors=5, metric="cosine").fit(
        tfidf_train, [p.parent.name for p in train_docs]
    )
    baseline_accuracy = float(
        np.mean(baseline.predict(tfidf_test) == [p.parent.name for p in test_docs])
    )

    info = read_model_info(str(model))
    results = {
        "date": time.strftime("%Y-%m-%d"),
        "split": "10 noun supersenses x (300 train + 100 test) WordNet 3.0 glosses, seed 0",
        "embedding_dim": info.embedding_dim,
        "vocabulary_size": info.vocabulary_size,
        "train_wall_s": round(train_s, 1),
        "validation_accuracy": info.metrics.get("validation_accuracy"),
        "embedbeam_knn5_accuracy_euclidean": round(
            knn_accuracy(train_x, train_y, test_x, test_y), 4
        ),
        "raw_tfidf_knn5_accuracy_cosine": round(baseline_accuracy, 4),
        "raw_tfidf_dimensions": len(vectorizer.vocabulary_),
    }
    record("text_quality", results)


if __name__ == "__main__":
    main()
