"""What the jobs share: the checks before a graph is built (inputs exist, output is free),
the claim a job holds on its output while it runs, progress, and the one stage that
reads and featurizes inputs for both."""

from __future__ import annotations

import contextlib
import itertools
import os
import posixpath
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions

from embedbeam.pipeline.errors import UserError
from embedbeam.pipeline.jobs.options import JobOptions
from embedbeam.transforms.common.progress import ProgressSpec
from embedbeam.transforms.list_inputs import (
    INLINE_COLUMNS,
    InputSource,
    ListInputBatches,
    manifest_columns,
    manifest_format,
    manifest_row_count,
)
from embedbeam.transforms.read_and_featurize import ReadAndFeaturize
from embedbeam.transforms.sparse.modalities import MODALITIES
from embedbeam.transforms.table import claim
from embedbeam.transforms.table.files import iter_paths

# The most inputs a modality needs before it featurizes in child processes, which
# smaller jobs would wait for to start (transforms/sparse/modalities.py).
FEATURIZE_PROCESSES_MIN_INPUTS = max(
    spec.featurize_processes_from or 0 for spec in MODALITIES.values()
)
# Files of a glob (rows of a CSV or JSONL manifest) the launcher counts at most: enough
# to choose featurizing processes, few enough that the launch does not grow with the job.
LAUNCH_COUNT_LIMIT = FEATURIZE_PROCESSES_MIN_INPUTS


def input_source(options: JobOptions) -> InputSource:
    """The job's InputSource, after checking that it names some inputs."""
    if options.input:
        # One match is enough to know it is not empty; the job lists the whole glob later.
        if not FileSystems.match([options.input], limits=[1])[0].metadata_list:
            raise UserError(f"--input {options.input!r} matches no files")
        return InputSource(
            pattern=options.input,
            labels_from_folder=options.label_from == "folder",
            text_field=options.text_field,
        )
    if options.manifest:
        if not FileSystems.exists(options.manifest):
            raise UserError(f"--manifest {options.manifest} does not exist")
        try:
            manifest_format(options.manifest)
            columns = manifest_columns(options.manifest)
        except ValueError as error:
            raise UserError(f"cannot read manifest {options.manifest}: {error}") from error
        if not {"uri", *INLINE_COLUMNS} & set(columns):
            raise UserError(
                f"manifest {options.manifest} has no `uri` column, nor inline `text` or `ids` "
                f"(columns: {', '.join(columns) or 'none'})"
            )
        return InputSource(manifest=options.manifest)
    raise UserError("say what to read: --input 'GLOB' or --manifest FILE")


def check_output_dir(output: str | None, marker: str, overwrite: bool) -> None:
    """Refuses to touch a finished output (one holding `marker`) unless --overwrite."""
    if not output:
        raise UserError("say where to write: --output DIR")
    if FileSystems.exists(posixpath.join(output, marker)) and not overwrite:
        raise UserError(f"{output} already holds a finished result; pass --overwrite to replace it")


@contextlib.contextmanager
def claimed_output(claim_path: str, run_id: str, output: str) -> Iterator[claim.Claim]:
    """Holds the claim on `output` (its file `claim_path`) for run `run_id` while the
    block runs: one writer per output. Another live run's claim is a one-line UserError
    naming that run and how to clear it if it is gone; a dead run's is taken over."""
    try:
        with claim.holding(claim_path, run_id) as held:
            yield held
    except claim.ClaimHeld as error:
        raise UserError(
            f"{output} is being written by {error.holder.describe()}; wait for it to "
            f"finish, or if that run is gone (a claim without heartbeat is taken over after "
            f"{claim.STALE_AFTER_S:.0f} s), delete {claim_path}"
        ) from None


def progress_spec(
    what: str, expected: int | None, options: PipelineOptions, run_id: str
) -> ProgressSpec:
    """How the job reports progress; with a total (hence an ETA) only when this process
    does all the work, since a remote worker sees only its share of the inputs."""
    return ProgressSpec(what, expected if _in_process(options) else None, run_id)


def _in_process(options: PipelineOptions) -> bool:
    runner = options.view_as(StandardOptions).runner
    mode = options.view_as(DirectOptions).direct_running_mode
    return runner in (None, "DirectRunner", "direct") and mode != "multi_processing"


def one_worker(options: PipelineOptions) -> bool:
    """The in-process DirectRunner with one worker thread (its default; 0 means one per
    core): no other worker to spread elements to."""
    return _in_process(options) and options.view_as(DirectOptions).direct_num_workers == 1


def default_featurize_processes(
    options: PipelineOptions, modalities: Iterable[str], expected: int | None
) -> int:
    """--featurize-processes when not given: if all the job's modalities featurize in
    processes and it is large enough for each to repay starting them
    (transforms/sparse/modalities.py; `expected` None: more inputs than the launcher
    counts, expected_inputs), one per core the in-process worker leaves idle, or one per
    core if every modality asks so; else 0, a read-ahead thread."""
    specs = [MODALITIES[modality] for modality in modalities]
    starts = [spec.featurize_processes_from for spec in specs]
    if not one_worker(options) or not specs or None in starts:
        return 0
    if expected is not None and expected < max(starts):
        return 0
    cores = len(os.sched_getaffinity(0))
    return cores if all(spec.featurize_process_per_core for spec in specs) else cores - 1


def expected_inputs(source: InputSource) -> int | None:
    """Inputs the job will see, where the launcher can count them cheaply: a Parquet
    manifest's rows (its footer), or the files of a glob or rows of a CSV or JSONL
    manifest if there are at most LAUNCH_COUNT_LIMIT; None otherwise, and for .jsonl
    files, whose lines are counted only when read. A job with no count is checked at its
    commit against its own listing's count (transforms/write_embeddings.py), so that the
    launch does not grow with the inputs (bench/README.md, 'Listing that scales')."""
    if source.manifest is not None:
        return manifest_row_count(source.manifest, at_most=LAUNCH_COUNT_LIMIT)
    paths = list(itertools.islice(iter_paths(source.pattern), LAUNCH_COUNT_LIMIT + 1))
    if len(paths) > LAUNCH_COUNT_LIMIT or any(path.endswith(".jsonl") for path in paths):
        return None
    return len(paths)


def new_run_id() -> str:
    """A run's id: when it started (UTC, sortable) and a random suffix."""
    return f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:8]}"


def spread(ref_batches: beam.PCollection, options: PipelineOptions) -> beam.PCollection:
    """Batches of refs spread over the workers (a Reshuffle). The in-process runner with
    one worker has none to spread to: a reshuffle would only pickle every batch and make
    reading wait for the end of listing, so the batches go straight on."""
    if one_worker(options):
        return ref_batches
    return ref_batches | "SpreadInputBatches" >> beam.Reshuffle()


def list_inputs(source: InputSource, batch_size: int, options: PipelineOptions) -> ListInputBatches:
    """The listing stage: its parts, then its batches, spread over the workers (when there
    are workers to spread to, as in `spread`), .jsonl files expanded after that."""
    return ListInputBatches(source, batch_size, spread=not one_worker(options))


def read_and_featurize(
    options: PipelineOptions,
    settings_by_modality: Mapping[str, Mapping[str, Any]],
    expected: int | None,
    progress: ProgressSpec,
    vocabulary_dirs: Mapping[str, str] | None = None,
    processes: int | None = None,
) -> ReadAndFeaturize:
    """The featurize stage of both jobs, so a model is trained on exactly the features it
    embeds; `processes` None picks the default (default_featurize_processes)."""
    if processes is None:
        processes = default_featurize_processes(options, settings_by_modality, expected)
    return ReadAndFeaturize(
        settings_by_modality,
        vocabulary_dirs,
        max_bytes=options.view_as(JobOptions).max_input_bytes,
        progress=progress,
        processes=processes,
    )
