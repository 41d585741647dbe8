"""WriteEmbeddings: rows and dead letters -> a committed Parquet table, all or nothing.

Everything is first written under `OUT/_staging/<run_id>/` (readers skip `_`
folders). When every file is written, one commit step (a single-key
GroupByKey, so no side inputs are needed) checks that inputs seen = rows +
dead letters, moves the staged files into place, writes each modality's
`centroids/modality=<m>/centroids.parquet` (the model's, or with `--recluster`
the ones fitted in this run, which arrive as "refits") and `_manifest.json`,
and writes `_SUCCESS` last. Until `_SUCCESS` exists
the output is not a table: a failed run leaves none, and a repeated run
replaces the old table only at its own commit.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import posixpath
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems

from transforms.centroids import write_centroids
from transforms.files import move_files
from transforms.records import EmbeddingRow
from transforms.schemas import embeddings_schema
from transforms.write_dead_letters import WriteDeadLetters

_LOG = logging.getLogger(__name__)

SUCCESS = "_SUCCESS"
MANIFEST = "_manifest.json"
STAGING = "_staging"
TABLE_DIRS = ("embeddings", "dead_letter", "centroids")


@dataclasses.dataclass(frozen=True)
class OutputModel:
    """What the writer needs of the model that embedded one modality."""

    modality: str
    embedding_dim: int
    model_version: str
    load_centroids: Callable[[], np.ndarray]


@dataclasses.dataclass(frozen=True)
class RunInfo:
    """Facts about this run that go into `_manifest.json`."""

    run_id: str
    started_at: float
    options: Mapping[str, Any]


class WriteEmbeddings(beam.PTransform):
    """{"rows", "dead_letters", "inputs"[, "refits"]} -> the committed table's file names.

    Rows go to the `modality=<m>` partition of their modality, one per model.
    `inputs` is every InputRef the job listed; it is only counted, to prove
    nothing was lost between listing and writing. `refits`, if given, holds
    `(modality, {"centroids": array, ...})` of modalities reclustered in this run.
    """

    def __init__(self, output_dir: str, models: Sequence[OutputModel], run: RunInfo) -> None:
        super().__init__()
        self._output_dir = output_dir.rstrip("/")
        self._models = tuple(models)
        self._run = run

    def expand(self, pcolls: Mapping[str, beam.PCollection]) -> beam.PCollection[str]:
        staging = posixpath.join(self._output_dir, STAGING, self._run.run_id)
        partition_of = {model.modality: i for i, model in enumerate(self._models)}
        rows_by_modality = pcolls["rows"] | "PartitionByModality" >> beam.Partition(
            lambda row, _: partition_of[row.modality], len(self._models)
        )
        row_files = [
            rows
            | f"RowToRecord[{model.modality}]" >> beam.Map(EmbeddingRow.to_record)
            | f"WriteEmbeddingParquet[{model.modality}]"
            >> beam.io.WriteToParquet(
                posixpath.join(staging, "embeddings", f"modality={model.modality}", "part"),
                embeddings_schema(model.embedding_dim),
                file_name_suffix=".parquet",
                codec="zstd",
            )
            for model, rows in zip(self._models, rows_by_modality, strict=True)
        ]
        dead_letter_files = pcolls["dead_letters"] | "WriteDeadLetters" >> WriteDeadLetters(
            posixpath.join(staging, "dead_letter", "part")
        )
        facts = (
            (*row_files, dead_letter_files)
            | "FlattenWrittenFiles" >> beam.Flatten()
            | "FactWrittenFile" >> beam.Map(lambda path: ("file", path)),
            pcolls["rows"]
            | "ClusterOfRow" >> beam.Map(lambda row: (row.modality, row.cluster_id))
            | "CountRowsPerCluster" >> beam.combiners.Count.PerElement()
            | "FactClusterSize" >> beam.Map(lambda pair: ("cluster_size", pair)),
            pcolls["dead_letters"]
            | "CountDeadLetters" >> beam.combiners.Count.Globally()
            | "FactDeadLetters" >> beam.Map(lambda n: ("dead_letters", n)),
            pcolls["inputs"]
            | "CountInputs" >> beam.combiners.Count.Globally()
            | "FactInputsSeen" >> beam.Map(lambda n: ("inputs_seen", n)),
        )
        if "refits" in pcolls:
            facts += (pcolls["refits"] | "FactRefit" >> beam.Map(lambda refit: ("refit", refit)),)
        return (
            facts
            | "FlattenFacts" >> beam.Flatten()
            | "KeyForCommit" >> beam.Map(lambda fact: (None, fact))
            | "GatherFacts" >> beam.GroupByKey()
            | "CommitRun"
            >> beam.ParDo(_CommitRun(self._output_dir, staging, self._models, self._run))
        )


class _CommitRun(beam.DoFn):
    def __init__(
        self, output_dir: str, staging: str, models: Sequence[OutputModel], run: RunInfo
    ) -> None:
        self._output_dir = output_dir
        self._staging = staging
        self._models = models
        self._run = run

    def process(self, keyed_facts: tuple[None, Iterable[tuple[str, Any]]]) -> Iterable[str]:
        staged, cluster_sizes, counts = [], {}, {"dead_letters": 0, "inputs_seen": 0}
        refits = {}
        for kind, value in keyed_facts[1]:
            if kind == "file":
                staged.append(value)
            elif kind == "refit":
                refits[value[0]] = dict(value[1])
            elif kind == "cluster_size":
                (modality, cluster_id), size = value
                cluster_sizes[modality, int(cluster_id)] = int(size)
            else:
                counts[kind] = int(value)
        rows = sum(cluster_sizes.values())
        if counts["inputs_seen"] != rows + counts["dead_letters"]:
            raise RuntimeError(
                f"refusing to commit: {counts['inputs_seen']} inputs seen but {rows} rows + "
                f"{counts['dead_letters']} dead letters written"
            )
        self._remove_previous_table()
        committed = move_files(sorted(staged), self._staging, self._output_dir)
        models = {}
        for model in self._models:
            refit = refits.get(model.modality)
            centroids = refit.pop("centroids") if refit else model.load_centroids()
            sizes = np.array(
                [cluster_sizes.get((model.modality, i), 0) for i in range(len(centroids))]
            )
            path = posixpath.join(
                self._output_dir, "centroids", f"modality={model.modality}", "centroids.parquet"
            )
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
            "inputs_seen": counts["inputs_seen"],
            "rows_written": rows,
            "dead_letters": counts["dead_letters"],
            "models": models,
            "options": dict(self._run.options),
            "wall_time_s": round(time.time() - self._run.started_at, 2),
            "files": [posixpath.relpath(path, self._output_dir) for path in committed],
        }
        self._write(MANIFEST, json.dumps(manifest, indent=2, sort_keys=True).encode("utf-8"))
        self._write(SUCCESS, b"")
        FileSystems.delete([posixpath.join(self._output_dir, STAGING)])
        _LOG.info(
            "committed %d rows and %d dead letters to %s",
            rows,
            counts["dead_letters"],
            self._output_dir,
        )
        yield from committed

    def _remove_previous_table(self) -> None:
        """A table from an earlier run (or the debris of a failed commit) goes first, marker first."""
        for name in (SUCCESS, MANIFEST, *TABLE_DIRS):
            path = posixpath.join(self._output_dir, name)
            if FileSystems.exists(path):
                FileSystems.delete([path])

    def _write(self, name: str, data: bytes) -> None:
        with FileSystems.create(posixpath.join(self._output_dir, name)) as handle:
            handle.write(data)
