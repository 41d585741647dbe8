"""`embedbeam tune-dim`: train at several embedding widths, measure each, pick one.

The Beam half of training (featurize, TFT analyze) runs once; the encoder is
then fit at each width in turn on the same rows with the same seed and
measured on the same held-out rows (validation accuracy, 5-NN accuracy of the
held-out embeddings, parameters). The pick is the smallest width whose 5-NN
accuracy is within TIE_TOLERANCE of the best: as good, and cheaper to store
and search. Writes tune_dim.csv, tune_dim.md and tune_dim.png to --output.
"""

from __future__ import annotations

import csv
import dataclasses
import os
import time

import numpy as np
from apache_beam.options.pipeline_options import PipelineOptions

from embedbeam.pipeline.errors import UserError
from embedbeam.pipeline.jobs.options import JobOptions, TrainOptions, TuneDimOptions
from embedbeam.pipeline.jobs.preflight import check_output_dir
from embedbeam.pipeline.jobs.train import analyzed, load_training_data
from embedbeam.pipeline.model import encoder as encoder_lib
from embedbeam.pipeline.model.training import (
    TrainingData,
    auto_embedding_dim,
    fit_at_width,
    validation_metrics,
)
from embedbeam.transforms.common.progress import Progress

TIE_TOLERANCE = 0.005
TABLE = "tune_dim.csv"


@dataclasses.dataclass(frozen=True)
class WidthResult:
    dim: int
    validation_accuracy: float
    validation_knn5_accuracy: float
    parameters: int
    fit_seconds: float


def default_dims(num_ids: int) -> list[int]:
    """Five widths around the 4th-root rule's d, 20% of d apart (26 -> 16, 21, 26, 31, 36)."""
    auto = auto_embedding_dim(num_ids)
    step = max(1, round(auto * 0.2))
    return [auto + k * step for k in range(-2, 3) if auto + k * step >= 2]


def pick(results: list[WidthResult]) -> WidthResult:
    best = max(result.validation_knn5_accuracy for result in results)
    return min(
        (r for r in results if r.validation_knn5_accuracy >= best - TIE_TOLERANCE),
        key=lambda r: r.dim,
    )


def tune_dim(options: PipelineOptions) -> tuple[list[WidthResult], WidthResult]:
    """Runs the search; writes the table and plot to --output; returns results and the pick."""
    job = options.view_as(JobOptions)
    train_options = options.view_as(TrainOptions)
    if train_options.embedding_dim is not None:
        raise UserError("tune-dim searches widths itself: give --dims, not --embedding-dim")
    check_output_dir(job.output, TABLE, job.overwrite)
    config = encoder_lib.TrainingConfig(epochs=train_options.epochs, seed=train_options.seed)
    with analyzed(options, os.path.join(job.output, "analysis")) as (work_dir, model_dir):
        data = load_training_data(train_options, work_dir, model_dir)
        if not data.validation_index.size:
            raise UserError("too few inputs to hold any out for validation; give more inputs")
        dims = options.view_as(TuneDimOptions).dims or default_dims(data.num_ids)
        progress = Progress("tune-dim", total=len(dims), interval_s=0, unit="widths")
        results = []
        for dim in dims:
            results.append(_measure(data, dim, config))
            progress.add()
    best = pick(results)
    write_results(results, best, job.output)
    return results, best


def _measure(data: TrainingData, dim: int, config: encoder_lib.TrainingConfig) -> WidthResult:
    started = time.monotonic()
    encoder = fit_at_width(data, dim, config)
    fit_seconds = time.monotonic() - started
    metrics = validation_metrics(
        data,
        encoder_lib.predict_labels(encoder, data.rows),
        encoder_lib.embed_rows(encoder.embed, data.rows),
    )
    return WidthResult(
        dim=dim,
        validation_accuracy=round(metrics["validation_accuracy"], 4),
        validation_knn5_accuracy=round(metrics["validation_knn5_accuracy"], 4),
        parameters=int(sum(np.prod(v.shape) for v in encoder.trainable_variables)),
        fit_seconds=round(fit_seconds, 1),
    )


def format_results(results: list[WidthResult], best: WidthResult) -> str:
    """A Markdown table, the pick marked."""
    lines = [
        "| d | validation accuracy | validation 5-NN accuracy | parameters | fit s | |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        mark = "**picked**" if r is best else ""
        lines.append(
            f"| {r.dim} | {r.validation_accuracy:.4f} | {r.validation_knn5_accuracy:.4f} "
            f"| {r.parameters:,} | {r.fit_seconds} | {mark} |"
        )
    return "\n".join(lines)


def write_results(results: list[WidthResult], best: WidthResult, folder: str) -> None:
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, TABLE), "w", newline="") as handle:
        writer = csv.DictWriter(handle, [*WidthResult.__dataclass_fields__, "picked"])
        writer.writeheader()
        for result in results:
            writer.writerow({**dataclasses.asdict(result), "picked": result is best})
    with open(os.path.join(folder, "tune_dim.md"), "w") as handle:
        handle.write(format_results(results, best) + "\n")
    _plot(results, best, os.path.join(folder, "tune_dim.png"))


def _plot(results: list[WidthResult], best: WidthResult, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    dims = [r.dim for r in results]
    figure, accuracy_axis = plt.subplots(figsize=(6, 4), dpi=100)
    accuracy_axis.plot(dims, [r.validation_accuracy for r in results], "o-", label="validation")
    accuracy_axis.plot(dims, [r.validation_knn5_accuracy for r in results], "s-", label="5-NN")
    accuracy_axis.axvline(best.dim, color="grey", linestyle=":", label=f"picked d={best.dim}")
    accuracy_axis.set_xlabel("embedding width d")
    accuracy_axis.set_ylabel("held-out accuracy")
    accuracy_axis.set_xticks(dims)
    accuracy_axis.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
