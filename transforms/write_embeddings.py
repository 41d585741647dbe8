"""WriteEmbeddings: rows and dead letters -> a committed Parquet table, all or nothing.

Everything is first written under `OUT/_staging/<run_id>/` (readers skip `_`
folders); embeddings as whole shards while the run goes (WriteParquetShards),
so an interrupted run leaves finished shards that `embed --resume` reuses.
With `--recluster` the shards arrive already staged (transforms/recluster.py
writes them once its centroids are fitted) and are committed the same way.
When every file is written, one commit step (a single-key GroupByKey, so no
side inputs are needed) checks that inputs seen = rows + dead letters (+ inputs
skipped because a resumed run keeps their rows), moves the staged files into
place, writes each modality's `centroids/modality=<m>/centroids.parquet` (the
model's, or with `--recluster` the ones fitted in this run, which arrive as
"refits") and `_manifest.json`, and writes `_SUCCESS` last. Until `_SUCCESS`
exists the output is not a table: a failed run leaves none, a repeated run
replaces the old table only at its own commit, and a resumed run adds its rows
to the kept ones at its commit.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import logging
import posixpath
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems
from embedbeam.transforms.common.by_modality import split_by_modality
from embedbeam.transforms.common.records import EmbeddingRows
from embedbeam.transforms.table.centroids import write_centroids
from embedbeam.transforms.table.files import move_files
from embedbeam.transforms.table.layout import (
    DEAD_LETTER,
    DEFAULT_ROWS_PER_SHARD,
    EMBEDDINGS,
    RUN_RECORD,
    STAGING,
    SUCCESS,
    TABLE_DIRS,
    centroids_path,
    embeddings_schema,
    staged_dir,
    staged_run,
    staging_dir,
)
from embedbeam.transforms.write_dead_letters import WriteDeadLetters, write_empty_dead_letters
from embedbeam.transforms.write_shards import WriteParquetShards

_LOG = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class OutputModel:
    """What the writer needs of the model that embedded one modality."""

    modality: str
    embedding_dim: int
    model_version: str
    load_centroids: Callable[[], np.ndarray]


@dataclasses.dataclass(frozen=True)
class ResumePlan:
    """Rows of earlier runs that this run keeps (`embed --resume`); empty for a fresh run.

    `keep` are whole embeddings files: of the table (left in place) or staged
    by interrupted runs (moved in at the commit). `drop` are table files whose
    ids a kept file also holds; the commit deletes them.
    """

    keep: tuple[str, ...] = ()
    drop: tuple[str, ...] = ()
    cluster_sizes: tuple[tuple[str, int, int], ...] = ()  # (modality, cluster_id, kept rows)

    @property
    def rows(self) -> int:
        return sum(size for _, _, size in self.cluster_sizes)


@dataclasses.dataclass(frozen=True)
class RunInfo:
    """Facts about this run that go into `_manifest.json`."""

    run_id: str
    started_at: float
    options: Mapping[str, Any]
    # Inputs the launcher listed (None if unknown, e.g. .jsonl): a job that saw fewer lost some.
    inputs_expected: int | None = None


class WriteEmbeddings(beam.PTransform):
    """{"rows" and/or "staged_shards", "dead_letters", "inputs"[, "skipped"][, "refits"]}
    -> the committed file names.

    Rows go to the `modality=<m>` partition of their modality, one per model.
    `staged_shards` are StagedShards a stage upstream already wrote (--recluster):
    committed with their cluster sizes, without passing their rows through here.
    `inputs` is every InputRef the job listed, in batches (lists); it is only
    counted, to prove nothing was lost between listing and writing. `skipped`
    are the inputs a resumed run did not embed because `resume` keeps a row of
    their id, in batches too.
    `refits`, if given, holds `(modality, {"centroids": array, ...})` of
    modalities reclustered in this run.
    """

    def __init__(
        self,
        output_dir: str,
        models: Sequence[OutputModel],
        run: RunInfo,
        resume: ResumePlan | None = None,
        rows_per_shard: int = DEFAULT_ROWS_PER_SHARD,
    ) -> None:
        super().__init__()
        self._output_dir = output_dir.rstrip("/")
        self._models = tuple(models)
        self._run = run
        self._resume = resume
        self._rows_per_shard = rows_per_shard

    def expand(self, pcolls: Mapping[str, beam.PCollection]) -> beam.PCollection[str]:
        staging = staging_dir(self._output_dir, self._run.run_id)
        # Rows per cluster come as ((modality, cluster_id), rows) pairs, summed in one combine.
        written_files, cluster_sizes = [], []
        if "rows" in pcolls:
            row_files, row_cluster_sizes = self._write_rows(pcolls["rows"])
            written_files += row_files
            cluster_sizes.append(row_cluster_sizes)
        if "staged_shards" in pcolls:
            shards = pcolls["staged_shards"]
            written_files.append(shards | "FileOfStagedShard" >> beam.Map(lambda s: s.path))
            cluster_sizes.append(
                shards
                | "ClusterSizesOfStagedShard"
                >> beam.FlatMap(lambda s: _cluster_sizes(s.modality, s.cluster_sizes))
            )
        dead_letter_files = pcolls["dead_letters"] | "WriteDeadLetters" >> WriteDeadLetters(
            posixpath.join(staging, DEAD_LETTER), self._rows_per_shard
        )
        # One sum per count, all in one combine: fewer stages than a Count.Globally each.
        # A count with nothing to count has no key; the commit takes it as 0.
        counted = [
            pcolls["dead_letters"] | "CountDeadLetter" >> beam.Map(lambda _: ("dead_letters", 1)),
            pcolls["inputs"] | "CountInputs" >> beam.Map(lambda refs: ("inputs_seen", len(refs))),
        ]
        if "skipped" in pcolls:
            counted.append(
                pcolls["skipped"]
                | "CountSkipped" >> beam.Map(lambda refs: ("inputs_skipped", len(refs)))
            )
        facts = (
            (*written_files, dead_letter_files)
            | "FlattenWrittenFiles" >> beam.Flatten()
            | "FactWrittenFile" >> beam.Map(lambda path: ("file", path)),
            cluster_sizes
            | "FlattenClusterSizes" >> beam.Flatten()
            | "SumRowsPerCluster" >> beam.CombinePerKey(sum)
            | "FactClusterSize" >> beam.Map(lambda pair: ("cluster_size", pair)),
            counted | "FlattenCounts" >> beam.Flatten() | "SumCounts" >> beam.CombinePerKey(sum),
        )
        if "refits" in pcolls:
            facts += (pcolls["refits"] | "FactRefit" >> beam.Map(lambda refit: ("refit", refit)),)
        # A fact that always exists: the commit runs, and checks, even if nothing else reaches it.
        facts += (
            pcolls["inputs"].pipeline | "FactRun" >> beam.Create([("run", self._run.run_id)]),
        )
        return (
            facts
            | "FlattenFacts" >> beam.Flatten()
            | "KeyForCommit" >> beam.Map(lambda fact: (None, fact))
            | "GatherFacts" >> beam.GroupByKey()
            | "CommitRun"
            >> beam.ParDo(
                _CommitRun(self._output_dir, self._models, self._run, self._resume or ResumePlan())
            )
        )

    def _write_rows(
        self, rows: beam.PCollection[EmbeddingRows]
    ) -> tuple[list[beam.PCollection[str]], beam.PCollection]:
        """Rows -> staged shards per modality (their paths), and each batch's rows per cluster."""
        rows_by_modality = split_by_modality(rows, [model.modality for model in self._models])
        row_files = [
            modality_rows
            | f"RecordsOf[{model.modality}]" >> beam.Map(lambda batch: batch.records)
            | f"WriteEmbeddingParquet[{model.modality}]"
            >> WriteParquetShards(
                staged_dir(self._output_dir, self._run.run_id, EMBEDDINGS, model.modality),
                embeddings_schema(model.embedding_dim),
                self._rows_per_shard,
            )
            for model, modality_rows in zip(self._models, rows_by_modality, strict=True)
        ]
        cluster_sizes = rows | "ClusterSizesOfBatch" >> beam.FlatMap(
            lambda batch: _cluster_sizes(
                batch.modality, np.bincount(batch.records.column("cluster_id").to_numpy())
            )
        )
        return row_files, cluster_sizes


def _cluster_sizes(modality: str, sizes: Iterable[int]) -> Iterator[tuple[tuple[str, int], int]]:
    """((modality, cluster_id), rows) for each cluster of `sizes` (rows by cluster id) with rows."""
    for cluster_id, size in enumerate(sizes):
        if size:
            yield (modality, cluster_id), int(size)


class _CommitRun(beam.DoFn):
    def __init__(
        self,
        output_dir: str,
        models: Sequence[OutputModel],
        run: RunInfo,
        resume: ResumePlan,
    ) -> None:
        self._output_dir = output_dir
        self._models = models
        self._run = run
        self._resume = resume

    def process(self, keyed_facts: tuple[None, Iterable[tuple[str, Any]]]) -> Iterable[str]:
        staged, cluster_sizes = [], collections.Counter()
        counts = {"dead_letters": 0, "inputs_seen": 0, "inputs_skipped": 0}
        refits = {}
        for kind, value in keyed_facts[1]:
            if kind == "file":
                staged.append(value)
            elif kind == "refit":
                refits[value[0]] = dict(value[1])
            elif kind == "cluster_size":
                (modality, cluster_id), size = value
                cluster_sizes[modality, int(cluster_id)] += int(size)
            elif kind != "run":  # the run's fact only makes sure the commit happens
                counts[kind] = int(value)
        # Counts that agree with each other are not enough: a runner that misroutes
        # elements (DaskRunner mixes tagged outputs) can make them agree.
        expected = self._run.inputs_expected
        if expected is not None and counts["inputs_seen"] < expected:
            raise RuntimeError(
                f"refusing to commit: {expected} inputs listed at launch but the job saw only "
                f"{counts['inputs_seen']}"
            )
        if counts["inputs_skipped"] > self._resume.rows:
            raise RuntimeError(
                f"refusing to commit: {counts['inputs_skipped']} inputs skipped as already "
                f"embedded but only {self._resume.rows} rows of earlier runs kept"
            )
        rows = sum(cluster_sizes.values())
        accounted = rows + counts["dead_letters"] + counts["inputs_skipped"]
        if counts["inputs_seen"] != accounted:
            raise RuntimeError(
                f"refusing to commit: {counts['inputs_seen']} inputs seen but {rows} rows + "
                f"{counts['dead_letters']} dead letters + {counts['inputs_skipped']} inputs "
                "skipped (their rows kept) written"
            )
        if not counts["dead_letters"]:
            # Readers find the dead_letter table, empty, when every input made a row.
            staged.append(
                write_empty_dead_letters(
                    posixpath.join(staging_dir(self._output_dir, self._run.run_id), DEAD_LETTER)
                )
            )
        kept = self._resume
        for modality, cluster_id, size in kept.cluster_sizes:
            cluster_sizes[modality, cluster_id] += size
        self._remove_previous_table()
        staged_root = posixpath.join(self._output_dir, STAGING)
        committed = [path for path in kept.keep if not path.startswith(staged_root + "/")]
        committed += self._move_staged(sorted(staged) + sorted(set(kept.keep) - set(committed)))
        models = {}
        for model in self._models:
            refit = refits.get(model.modality)
            centroids = refit.pop("centroids") if refit else model.load_centroids()
            sizes = np.array(
                [cluster_sizes.get((model.modality, i), 0) for i in range(len(centroids))]
            )
            path = centroids_path(self._output_dir, model.modality)
            write_centroids(path, centroids, sizes)
            committed.append(path)
            models[model.modality] = {
                "model_version": model.model_version,
                "embedding_dim": model.embedding_dim,
                "clusters": len(centroids),
                "rows": int(sizes.sum()),
                **({"recluster": refit} if refit else {}),
            }
        manifest = {
            "run_id": self._run.run_id,
            # Kept rows of inputs this run did not list count as seen (by the run that wrote them).
            "inputs_seen": counts["inputs_seen"] + kept.rows - counts["inputs_skipped"],
            "rows_written": rows + kept.rows,
            "dead_letters": counts["dead_letters"],
            "resumed": {
                "inputs_listed": counts["inputs_seen"],
                "inputs_skipped": counts["inputs_skipped"],
                "rows_kept": kept.rows,
            },
            "models": models,
            "options": dict(self._run.options),
            "wall_time_s": round(time.time() - self._run.started_at, 2),
            "files": sorted(posixpath.relpath(path, self._output_dir) for path in committed),
        }
        self._write(RUN_RECORD, json.dumps(manifest, indent=2, sort_keys=True).encode("utf-8"))
        self._write(SUCCESS, b"")
        FileSystems.delete([staged_root])
        _LOG.info(
            "committed %d rows (%d kept from earlier runs) and %d dead letters to %s",
            rows + kept.rows,
            kept.rows,
            counts["dead_letters"],
            self._output_dir,
        )
        yield from committed

    def _remove_previous_table(self) -> None:
        """A table from an earlier run (or the debris of a failed commit) goes first, marker first.

        A resumed run keeps the table's embeddings files it resumes from.
        """
        resuming = bool(self._resume.keep or self._resume.drop)
        names = (
            SUCCESS,
            RUN_RECORD,
            *(d for d in TABLE_DIRS if not (resuming and d == EMBEDDINGS)),
        )
        paths = [posixpath.join(self._output_dir, name) for name in names]
        for path in (*paths, *self._resume.drop):
            if FileSystems.exists(path):
                FileSystems.delete([path])

    def _move_staged(self, paths: list[str]) -> list[str]:
        """Staged files (of this run, or kept from interrupted ones) to their place in the table."""
        staged_root = posixpath.join(self._output_dir, STAGING)
        by_run = collections.defaultdict(list)
        for path in paths:
            by_run[staged_run(path, self._output_dir)].append(path)
        moved = []
        for run_id, run_paths in sorted(by_run.items()):
            moved += move_files(run_paths, posixpath.join(staged_root, run_id), self._output_dir)
        return moved

    def _write(self, name: str, data: bytes) -> None:
        with FileSystems.create(posixpath.join(self._output_dir, name)) as handle:
            handle.write(data)
