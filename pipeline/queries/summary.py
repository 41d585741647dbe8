"""A committed output, summed up for people: counts, quality, speed."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow.dataset as ds

from embedbeam.pipeline.model.quality import cluster_purity, leave_one_out_knn_accuracy
from embedbeam.pipeline.queries.table import embeddings_dataset, read_run_record
from embedbeam.transforms.table.files import absolute
from embedbeam.transforms.table.layout import vectors


def summarize(output_dir: str) -> dict[str, Any]:
    """Counts from `_manifest.json`; per modality, 5-NN accuracy and purity where rows have
    labels, on at most QUALITY_ROWS of them."""
    manifest = read_run_record(output_dir)
    summary = {
        "output": absolute(output_dir),
        "rows": manifest["rows_written"],
        "dead_letters": manifest["dead_letters"],
        "wall_time_s": manifest["wall_time_s"],
        "items_per_s": round(manifest["inputs_seen"] / max(manifest["wall_time_s"], 1e-9), 1),
    }
    # Quality needs the rows; they are read back only from a local output, not from gs:// etc.
    dataset = None if "://" in output_dir else embeddings_dataset(output_dir)
    for modality, model in sorted(manifest["models"].items()):
        summary[modality] = {
            "rows": model["rows"],
            "clusters": model["clusters"],
            "model_version": model["model_version"],
            **(_quality(dataset, modality) if dataset else {}),
        }
    return summary


# Labelled rows the quality measures read, at most: the table's first ones, so that the
# summary after a job of any size reads and holds a bounded part of it.
QUALITY_ROWS = 20_000


def _quality(dataset: ds.Dataset, modality: str) -> dict[str, float]:
    table = dataset.head(
        QUALITY_ROWS,
        columns=["label", "embedding", "cluster_id"],
        filter=(ds.field("modality") == modality) & ds.field("label").is_valid(),
    )
    if table.num_rows <= 5:
        return {}
    labels = np.asarray(table.column("label").to_pylist())
    return {
        "quality_rows": table.num_rows,
        "knn5_accuracy": round(
            leave_one_out_knn_accuracy(vectors(table.column("embedding")), labels), 4
        ),
        "cluster_purity": round(cluster_purity(table.column("cluster_id").to_numpy(), labels), 4),
    }


def format_summary(summary: dict[str, Any]) -> str:
    lines = []
    for key, value in summary.items():
        if isinstance(value, dict):
            lines.append(f"  {key}:")
            lines.extend(f"    {name:<14} {number}" for name, number in value.items())
        else:
            lines.append(f"  {key:<16} {value}")
    return "\n".join(lines)
