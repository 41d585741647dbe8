"""WriteEmbeddings: rows and dead letters -> a committed Parquet table, all or nothing.

Everything is first written under `OUT/_staging/<run_id>/` (readers skip `_`
folders); embeddings as whole shards while the run goes (WriteParquetShards),
so an interrupted run leaves finished shards that `embed --resume` reuses.
With `--recluster` the shards arrive already staged (transforms/recluster.py
writes them once its centroids are fitted) and are committed the same way.
When every file is written, one commit step (a single-key GroupByKey, so no
side inputs are needed) checks that inputs seen = rows + dead letters (+ inputs
skipped because a resumed run keeps their rows), stages each modality's
`centroids/modality=<m>/centroids.parquet` (the model's, or with `--recluster`
the ones fitted in this run, which arrive as Refits), checks that OUT is still
this run's to write (its claim, table/claim.py), moves the old table aside and
the staged files into place, writes `_manifest.json`, and writes `_SUCCESS`
last (the order, and why a kill at any step is recoverable:
`_CommitRun._replace_table`). What the commit is told arrives as facts, one
small dataclass each (WrittenFile, ClusterSize, Count, Refit, RunStarted).
Until `_SUCCESS` exists the output is not a table: a failed run leaves none, a
repeated run replaces the old table only at its own commit (and only with
`--overwrite` or `--resume`), and a resumed run adds its rows to the kept ones
at its commit. The commit deletes its own staging folder, and only those of
other runs that are known to be dead (it took over their claim, or kept their
shards), never a live run's.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import json
import logging
import os
import posixpath
import signal
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems

from embedbeam.pipeline.errors import RunFailure
from embedbeam.transforms.common.by_modality import split_by_modality
from embedbeam.transforms.common.records import DeadLetter, EmbeddingRows, InputRef, StagedShard
from embedbeam.transforms.table import claim
from embedbeam.transforms.table.centroids import write_centroids
from embedbeam.transforms.table.files import list_files, move_files, write_bytes
from embedbeam.transforms.table.layout import (
    DEAD_LETTER,
    DEFAULT_ROWS_PER_SHARD,
    EMBEDDINGS,
    RUN_RECORD,
    STAGING,
    SUCCESS,
    TABLE_DIRS,
    centroids_path,
    claim_path,
    embeddings_schema,
    replaced_dir,
    staged_dir,
    staged_run,
    staging_dir,
)
from embedbeam.transforms.write_dead_letters import WriteDeadLetters, write_empty_dead_letters
from embedbeam.transforms.write_shards import WriteParquetShards

_LOG = logging.getLogger(__name__)

# The counts the commit checks (Count.name).
DEAD_LETTERS = "dead_letters"
INPUTS_SEEN = "inputs_seen"
INPUTS_SKIPPED = "inputs_skipped"


@dataclasses.dataclass(frozen=True)
class WrittenFile:
    """A file this run staged, for the commit to move into the table."""

    path: str


@dataclasses.dataclass(frozen=True)
class ClusterSize:
    """Rows of one cluster of one modality."""

    modality: str
    cluster_id: int
    rows: int


@dataclasses.dataclass(frozen=True, eq=False)
class Refit:
    """Centroids fitted in this run for one modality (--recluster), and the fit's
    record for `_manifest.json` (transforms/recluster.py)."""

    modality: str
    centroids: np.ndarray  # float32 [k, d]
    record: Mapping[str, Any]


@dataclasses.dataclass(frozen=True)
class Count:
    """One of the counts the commit checks (DEAD_LETTERS, INPUTS_SEEN, INPUTS_SKIPPED)."""

    name: str
    value: int


@dataclasses.dataclass(frozen=True)
class RunStarted:
    """The fact that always exists, so the commit runs (and checks) even if nothing else
    reaches it."""

    run_id: str


Fact = WrittenFile | ClusterSize | Count | Refit | RunStarted


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
    cluster_sizes: tuple[ClusterSize, ...] = ()  # of the kept rows

    @property
    def rows(self) -> int:
        return sum(size.rows for size in self.cluster_sizes)


@dataclasses.dataclass(frozen=True)
class RunInfo:
    """Facts about this run: what goes into `_manifest.json`, and what the commit re-checks."""

    run_id: str
    started_at: float
    options: Mapping[str, Any]
    # Inputs the launcher listed (None if unknown, e.g. .jsonl): a job that saw fewer lost some.
    inputs_expected: int | None = None
    # The launcher holds OUT's claim (table/claim.py) for run_id: the commit checks it still does.
    claimed: bool = False
    # --overwrite or --resume: the commit may replace a committed table (else it refuses).
    replaces: bool = False
    # The dead run whose claim this run took over: its staging folder goes at the commit.
    took_over: str | None = None


class TableInputs(NamedTuple):
    """What WriteEmbeddings commits: the embeddings as `rows`, or as `staged_shards` with
    their `refits` (--recluster), and what accounts for every input.

    `rows` go to the `modality=<m>` partition of their modality, one per model.
    `staged_shards` are shards a stage upstream already wrote (--recluster):
    committed with their cluster sizes, without passing their rows through here;
    `refits` are the centroids of the modalities reclustered in this run.
    `inputs` is every InputRef the job listed, in batches (lists); it is only
    counted, to prove nothing was lost between listing and writing. `skipped`
    are the inputs a resumed run did not embed because `resume` keeps a row of
    their id, in batches too.
    """

    dead_letters: beam.PCollection[DeadLetter]
    inputs: beam.PCollection[list[InputRef]]
    rows: beam.PCollection[EmbeddingRows] | None = None
    staged_shards: beam.PCollection[StagedShard] | None = None
    refits: beam.PCollection[Refit] | None = None
    skipped: beam.PCollection[list[InputRef]] | None = None


class WriteEmbeddings(beam.PTransform[TableInputs, beam.PCollection[str]]):
    """TableInputs -> the committed file names."""

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

    def _extract_input_pvalues(
        self, inputs: TableInputs
    ) -> tuple[TableInputs, dict[str, beam.PCollection]]:
        # Beam takes every member of a NamedTuple for an input PCollection; absent ones are not.
        return inputs, {
            name: pcoll for name, pcoll in inputs._asdict().items() if pcoll is not None
        }

    def expand(self, inputs: TableInputs) -> beam.PCollection[str]:
        staging = staging_dir(self._output_dir, self._run.run_id)
        # Rows per cluster come as ((modality, cluster_id), rows) pairs, summed in one combine.
        written_files, cluster_sizes = [], []
        if inputs.rows is not None:
            row_files, row_cluster_sizes = self._write_rows(inputs.rows)
            written_files += row_files
            cluster_sizes.append(row_cluster_sizes)
        if inputs.staged_shards is not None:
            shards = inputs.staged_shards
            written_files.append(shards | "FileOfStagedShard" >> beam.Map(lambda s: s.path))
            cluster_sizes.append(
                shards
                | "ClusterSizesOfStagedShard"
                >> beam.FlatMap(lambda s: _cluster_sizes(s.modality, s.cluster_sizes))
            )
        dead_letter_files = inputs.dead_letters | "WriteDeadLetters" >> WriteDeadLetters(
            posixpath.join(staging, DEAD_LETTER), self._rows_per_shard
        )
        # One sum per count, all in one combine: fewer stages than a Count.Globally each.
        # A count with nothing to count has no key; the commit takes it as 0.
        counted = [
            inputs.dead_letters | "CountDeadLetter" >> beam.Map(lambda _: (DEAD_LETTERS, 1)),
            inputs.inputs | "CountInputs" >> beam.Map(lambda refs: (INPUTS_SEEN, len(refs))),
        ]
        if inputs.skipped is not None:
            counted.append(
                inputs.skipped
                | "CountSkipped" >> beam.Map(lambda refs: (INPUTS_SKIPPED, len(refs)))
            )
        facts = (
            (*written_files, dead_letter_files)
            | "FlattenWrittenFiles" >> beam.Flatten()
            | "FactWrittenFile" >> beam.Map(lambda path: WrittenFile(path)),
            cluster_sizes
            | "FlattenClusterSizes" >> beam.Flatten()
            | "SumRowsPerCluster" >> beam.CombinePerKey(sum)
            | "FactClusterSize"
            >> beam.MapTuple(lambda key, rows: ClusterSize(key[0], key[1], rows)),
            counted
            | "FlattenCounts" >> beam.Flatten()
            | "SumCounts" >> beam.CombinePerKey(sum)
            | "FactCount" >> beam.MapTuple(lambda name, value: Count(name, value)),
        )
        if inputs.refits is not None:
            facts += (inputs.refits,)
        facts += (
            inputs.inputs.pipeline | "FactRun" >> beam.Create([RunStarted(self._run.run_id)]),
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

    def process(self, keyed_facts: tuple[None, Iterable[Fact]]) -> Iterable[str]:
        staged, cluster_sizes = [], collections.Counter()
        counts = {DEAD_LETTERS: 0, INPUTS_SEEN: 0, INPUTS_SKIPPED: 0}
        refits: dict[str, Refit] = {}
        for fact in keyed_facts[1]:
            match fact:
                case WrittenFile(path):
                    staged.append(path)
                case ClusterSize(modality, cluster_id, rows):
                    cluster_sizes[modality, int(cluster_id)] += int(rows)
                case Count(name, value):
                    counts[name] = int(value)
                case Refit(modality=modality):
                    refits[modality] = fact
                case RunStarted():
                    pass  # it only makes sure the commit happens
        # Counts that agree with each other are not enough: a runner that misroutes
        # elements (DaskRunner mixes tagged outputs) can make them agree.
        expected = self._run.inputs_expected
        if expected is not None and counts[INPUTS_SEEN] < expected:
            raise RuntimeError(
                f"refusing to commit: {expected} inputs listed at launch but the job saw only "
                f"{counts[INPUTS_SEEN]}"
            )
        if counts[INPUTS_SKIPPED] > self._resume.rows:
            raise RuntimeError(
                f"refusing to commit: {counts[INPUTS_SKIPPED]} inputs skipped as already "
                f"embedded but only {self._resume.rows} rows of earlier runs kept"
            )
        rows = sum(cluster_sizes.values())
        accounted = rows + counts[DEAD_LETTERS] + counts[INPUTS_SKIPPED]
        if counts[INPUTS_SEEN] != accounted:
            raise RuntimeError(
                f"refusing to commit: {counts[INPUTS_SEEN]} inputs seen but {rows} rows + "
                f"{counts[DEAD_LETTERS]} dead letters + {counts[INPUTS_SKIPPED]} inputs "
                "skipped (their rows kept) written"
            )
        staging = staging_dir(self._output_dir, self._run.run_id)
        if not counts[DEAD_LETTERS]:
            # Readers find the dead_letter table, empty, when every input made a row.
            staged.append(write_empty_dead_letters(posixpath.join(staging, DEAD_LETTER)))
        kept = self._resume
        for size in kept.cluster_sizes:
            cluster_sizes[size.modality, size.cluster_id] += size.rows
        # The centroids are staged too, so that the table's files all move in one step.
        models = {}
        for model in self._models:
            refit = refits.get(model.modality)
            centroids = refit.centroids if refit else model.load_centroids()
            sizes = np.array(
                [cluster_sizes.get((model.modality, i), 0) for i in range(len(centroids))]
            )
            path = centroids_path(staging, model.modality)
            write_centroids(path, centroids, sizes)
            staged.append(path)
            models[model.modality] = {
                "model_version": model.model_version,
                "embedding_dim": model.embedding_dim,
                "clusters": len(centroids),
                "rows": int(sizes.sum()),
                **({"recluster": dict(refit.record)} if refit else {}),
            }
        committed = self._replace_table(
            sorted(staged),
            {
                "run_id": self._run.run_id,
                # Kept rows of inputs this run did not list count as seen (by the run that
                # wrote them).
                "inputs_seen": counts[INPUTS_SEEN] + kept.rows - counts[INPUTS_SKIPPED],
                "rows_written": rows + kept.rows,
                "dead_letters": counts[DEAD_LETTERS],
                "resumed": {
                    "inputs_listed": counts[INPUTS_SEEN],
                    "inputs_skipped": counts[INPUTS_SKIPPED],
                    "rows_kept": kept.rows,
                },
                "models": models,
                "options": dict(self._run.options),
                "wall_time_s": round(time.time() - self._run.started_at, 2),
            },
        )
        _LOG.info(
            "committed %d rows (%d kept from earlier runs) and %d dead letters to %s",
            rows + kept.rows,
            kept.rows,
            counts[DEAD_LETTERS],
            self._output_dir,
        )
        yield from committed

    def _replace_table(self, staged: list[str], record: dict[str, Any]) -> list[str]:
        """Puts this run's table in place of what OUT holds, in an order a kill at any step
        leaves recoverable (by `--resume` or `--overwrite`); returns the table's files.

        1. check that OUT is still this run's to write (its claim; no table committed
           meanwhile, unless --overwrite or --resume);
        2. remove `_SUCCESS`: from here OUT holds no table;
        3. move the old table's files (but those a resumed run keeps) aside, into this
           run's `_staging/<run>/_replaced/`, where `--resume` does not look;
        4. move the staged files (this run's, and those kept from interrupted runs) in;
        5. write the run record, then `_SUCCESS`;
        6. delete this run's staging folder (the replaced table with it), and those of
           the dead runs it took the claim over from or kept shards of (a killed
           commit's old table, moved aside, goes with them); never a live run's.

        Test hook: if the environment variable COMMIT_KILL_AT_ENV names one of the
        steps in COMMIT_STEPS, the process kills itself with SIGKILL when it reaches
        that step (tests/test_kill_anywhere.py); nothing else reads it.
        """
        out, run_id = self._output_dir, self._run.run_id
        self._check_output_is_ours()
        _reached("checked")
        success = posixpath.join(out, SUCCESS)
        if FileSystems.exists(success):
            FileSystems.delete([success])
        _reached("unmarked")
        self._move_previous_table_aside()
        _reached("moved_aside")
        staged_root = posixpath.join(out, STAGING)
        kept = self._resume.keep
        committed = [path for path in kept if not path.startswith(staged_root + "/")]
        to_move = staged + sorted(set(kept) - set(committed))
        half = len(to_move) // 2
        committed += self._move_staged(to_move[:half])
        _reached("moving_in")
        committed += self._move_staged(to_move[half:])
        _reached("moved_in")
        record["files"] = sorted(posixpath.relpath(path, out) for path in committed)
        write_bytes(
            posixpath.join(out, RUN_RECORD),
            json.dumps(record, indent=2, sort_keys=True).encode("utf-8"),
        )
        _reached("recorded")
        write_bytes(success, b"")
        _reached("marked")
        dead_runs = {staged_run(path, out) for path in kept if path.startswith(staged_root + "/")}
        if self._run.took_over:
            dead_runs.add(self._run.took_over)
        for run in sorted({run_id} | dead_runs):
            path = staging_dir(out, run)
            if FileSystems.exists(path):
                FileSystems.delete([path])
        _remove_empty_local_dir(staged_root)
        return committed

    def _check_output_is_ours(self) -> None:
        """Step 1: the claim still names this run, and no table was committed meanwhile."""
        out, run_id = self._output_dir, self._run.run_id
        holder = claim.holder(claim_path(out))
        if self._run.claimed and (holder is None or holder.run_id != run_id):
            held = f"it is held by {holder.describe()}" if holder else "its claim is gone"
            raise RunFailure(
                f"claim lost: run {run_id} no longer holds {out} ({held}); nothing was "
                "committed and nothing removed"
            )
        if not self._run.claimed and holder is not None and holder.run_id != run_id:
            raise RunFailure(
                f"refusing to commit: {out} is claimed by {holder.describe()}; nothing removed"
            )
        if not self._run.replaces and FileSystems.exists(posixpath.join(out, SUCCESS)):
            raise RunFailure(
                f"refusing to commit: a table was committed to {out} while run {run_id} ran; "
                "nothing removed (pass --overwrite to replace it)"
            )

    def _move_previous_table_aside(self) -> None:
        """Step 3: the files of the old table (or the debris of a commit that died) go
        into this run's staging folder; the files a resumed run keeps stay."""
        out = self._output_dir
        aside = replaced_dir(out, self._run.run_id)
        kept = set(self._resume.keep)
        record = posixpath.join(out, RUN_RECORD)
        if FileSystems.exists(record):
            move_files([record], out, aside)
        for index, name in enumerate(TABLE_DIRS):
            directory = posixpath.join(out, name)
            if not FileSystems.exists(directory):
                continue
            old = [path for path in list_files(directory) if path not in kept]
            if old:
                move_files(old, out, aside)
            _remove_empty_local_dirs(directory)
            if index == 0:
                _reached("moving_aside")

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


# The commit's steps, in order, as the test hook names them (_CommitRun._replace_table).
COMMIT_STEPS = (
    "checked",
    "unmarked",
    "moving_aside",
    "moved_aside",
    "moving_in",
    "moved_in",
    "recorded",
    "marked",
)
COMMIT_KILL_AT_ENV = "EMBEDBEAM_TEST_KILL_AT_COMMIT_STEP"


def _reached(step: str) -> None:
    """Logs a commit step (at debug level); the test hook kills the process at the named one."""
    _LOG.debug("commit step: %s", step)
    if os.environ.get(COMMIT_KILL_AT_ENV) == step:
        os.kill(os.getpid(), signal.SIGKILL)


def _remove_empty_local_dirs(root: str) -> None:
    """Removes the empty folders under local `root` (and it, if empty); object stores have none."""
    if "://" in root or not os.path.isdir(root):
        return
    for directory, _, _ in sorted(os.walk(root), key=lambda entry: -len(entry[0])):
        with contextlib.suppress(OSError):
            os.rmdir(directory)


def _remove_empty_local_dir(directory: str) -> None:
    if "://" not in directory:
        with contextlib.suppress(OSError):
            os.rmdir(directory)
