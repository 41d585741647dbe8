"""`embedbeam embed`: inputs -> committed Parquet embeddings with cluster assignments.

    ListInputBatches (spread over the workers, if any) -> (SkipKnownIds, if resuming)
        -> ReadAndFeaturize
        -> EncodeEmbeddings -> AssignClusters -> WriteEmbeddings (staged, committed with
        _SUCCESS and _manifest.json)
        (or, with --recluster: -> Recluster, which stages the assigned shards itself
        -> WriteEmbeddings, which commits them)

Every stage also emits dead letters; they all reach WriteEmbeddings, which
refuses to commit unless inputs seen = rows + dead letters. From listing to
the Parquet writer, elements are batches of inputs, so that Beam's
per-element cost is paid once per batch and numpy, TFT and Arrow work over a
whole batch; AssignClusters hands the writer each batch's rows as one Arrow
record batch.
"""

from __future__ import annotations

import dataclasses
import functools
import gc
import posixpath
import time

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.runners.runner import PipelineResult

from embedbeam.pipeline.errors import UserError
from embedbeam.pipeline.jobs.options import EmbedOptions, JobOptions
from embedbeam.pipeline.jobs.preflight import (
    check_output_dir,
    claimed_output,
    expected_inputs,
    input_source,
    list_inputs,
    new_run_id,
    progress_spec,
    read_and_featurize,
)
from embedbeam.pipeline.jobs.resume import plan_resume
from embedbeam.pipeline.model.model_dir import (
    CENTROIDS,
    ModelInfo,
    modality_models,
    read_model_info,
)
from embedbeam.pipeline.queries.table import read_run_record
from embedbeam.transforms.assign_clusters import AssignClusters
from embedbeam.transforms.common.by_modality import split_by_modality
from embedbeam.transforms.encode_embeddings import (
    EMBED_SIGNATURE,
    EncodeEmbeddings,
    default_max_batch_nnz,
    max_batch_rows,
)
from embedbeam.transforms.recluster import Recluster
from embedbeam.transforms.skip_known_ids import SkipKnownIds
from embedbeam.transforms.table.centroids import read_centroids
from embedbeam.transforms.table.claim import Claim
from embedbeam.transforms.table.files import absolute
from embedbeam.transforms.table.layout import (
    EMBEDDINGS,
    SUCCESS,
    UNASSIGNED,
    claim_path,
    staged_dir,
)
from embedbeam.transforms.write_embeddings import (
    OutputModel,
    ResumePlan,
    RunInfo,
    TableInputs,
    WriteEmbeddings,
)


@dataclasses.dataclass(frozen=True)
class ModelRef:
    """The model of one modality of the run: where it lives, what its model.json says (for
    a joint model's modality: as that modality sees it) and the signature that embeds it."""

    directory: str
    info: ModelInfo
    signature: str = EMBED_SIGNATURE

    def output_model(self) -> OutputModel:
        load_centroids = functools.partial(
            read_centroids, posixpath.join(self.directory, CENTROIDS)
        )
        return OutputModel(
            self.info.modality, self.info.embedding_dim, self.info.model_version, load_centroids
        )


def resolve_models(values: list[str] | None) -> dict[str, ModelRef]:
    """`--model DIR` or `--model MODALITY=DIR`, repeated: one model per modality.

    A joint model's directory is a model for each of its modalities (all sharing its
    SavedModel, version and centroids); `MODALITY=DIR` takes only that one of them.
    """
    if not values:
        raise UserError("say which model to embed with: --model DIR (or MODALITY=DIR, repeated)")
    models: dict[str, ModelRef] = {}
    for value in values:
        named, _, directory = (
            value.partition("=") if "=" in value.split("/")[0] else ("", "", value)
        )
        try:
            info = read_model_info(directory)
        except ValueError as error:
            raise UserError(str(error)) from error
        embeds = modality_models(info)
        if named and named not in embeds:
            raise UserError(
                f"--model {value}: that directory holds a model for {', '.join(embeds)}"
            )
        for modality, model in embeds.items():
            if named and modality != named:
                continue
            if modality in models:
                raise UserError(f"two models for modality {modality}: give one per modality")
            models[modality] = ModelRef(absolute(directory), model.info, model.signature)
    return models


def build_embed_pipeline(
    options: PipelineOptions,
    pipeline: beam.Pipeline | None = None,
    run_id: str | None = None,
    claim: Claim | None = None,
) -> beam.Pipeline:
    """The embed job's graph; `embed` runs it, tests pass a TestPipeline.

    Each input goes to the model of its modality; inputs of a modality with
    no model become dead letters. `claim`: OUT's claim the caller holds for
    `run_id` (embed does), which the commit checks it still holds.
    """
    job = options.view_as(JobOptions)
    options = options.view_as(EmbedOptions)
    if options.resume and job.overwrite:
        raise UserError("--resume keeps what OUT holds and --overwrite replaces it: pick one")
    check_output_dir(job.output, SUCCESS, job.overwrite or options.resume)
    source = input_source(job)
    models = resolve_models(options.model)
    if options.recluster and options.recluster > options.recluster_sample:
        raise UserError("--recluster K must not exceed --recluster-sample")
    if options.recluster and options.resume:
        raise UserError(
            "--recluster fits clusters on this run's rows, but --resume keeps rows assigned "
            "by an earlier run: use one or the other"
        )
    resume = (
        plan_resume(job.output, {m: model.info.model_version for m, model in models.items()})
        if options.resume
        else ResumePlan()
    )

    run_id = run_id or new_run_id()
    pipeline = pipeline or beam.Pipeline(options=options)
    listed = pipeline | "ListInputs" >> list_inputs(source, options.max_batch_size, options)
    # Only a resumed run has ids to skip; a fresh run's batches go straight on.
    to_embed, skipped = (
        listed | "SkipKnownIds" >> SkipKnownIds(resume.keep) if resume.keep else (listed, None)
    )
    expected = expected_inputs(source)
    # Skipped inputs of a resumed run never reach reading: no total, no ETA.
    progress = progress_spec("embed", None if options.resume else expected, options, run_id)
    featurized, featurize_failures = to_embed | "ReadAndFeaturize" >> read_and_featurize(
        options,
        {modality: model.info.featurizer for modality, model in models.items()},
        expected,
        progress,
        vocabulary_dirs={modality: model.directory for modality, model in models.items()},
        processes=options.featurize_processes,
    )
    # ReadAndFeaturize dead-letters every modality without a model: each batch has one.
    featurized_by_modality = split_by_modality(featurized, list(models))
    rows, staged_shards, encode_failures, refits = [], [], [], []
    for (modality, model), batches in zip(models.items(), featurized_by_modality, strict=True):
        max_batch_nnz = options.max_batch_nnz or default_max_batch_nnz(model.info.vocabulary_size)
        embedded, failures = batches | f"EncodeEmbeddings[{modality}]" >> EncodeEmbeddings(
            model.directory,
            max_batch_nnz,
            max_batch_rows(model.info.vocabulary_size),
            model.signature,
        )
        if options.recluster:
            # Rows are staged unassigned and assigned once the fit is done: nothing waits in memory.
            shards, refit = embedded | f"Recluster[{modality}]" >> Recluster(
                modality,
                options.recluster,
                options.recluster_seed,
                model.info.embedding_dim,
                model.info.model_version,
                unassigned_dir=staged_dir(job.output, run_id, UNASSIGNED, modality),
                assigned_dir=staged_dir(job.output, run_id, EMBEDDINGS, modality),
                sample_size=options.recluster_sample,
                rows_per_shard=options.rows_per_shard,
            )
            staged_shards.append(shards)
            refits.append(refit)
        else:
            rows.append(
                embedded
                | f"AssignClusters[{modality}]"
                >> AssignClusters(
                    modality, model.output_model().load_centroids, model.info.model_version
                )
            )
        encode_failures.append(failures)
    dead_letters = (
        featurize_failures,
        *encode_failures,
    ) | "FlattenDeadLetters" >> beam.Flatten()
    table = TableInputs(
        dead_letters=dead_letters,
        inputs=listed,
        rows=_flattened(rows, "FlattenRows"),
        staged_shards=_flattened(staged_shards, "FlattenStagedShards"),
        refits=_flattened(refits, "FlattenRefits"),
        skipped=skipped,
    )
    _ = table | "WriteEmbeddings" >> WriteEmbeddings(
        job.output,
        [model.output_model() for model in models.values()],
        RunInfo(
            run_id=run_id,
            started_at=time.time(),
            options=_job_flags(job, options, models),
            inputs_expected=expected,
            claimed=claim is not None,
            took_over=claim.took_over if claim else None,
            replaces=bool(job.overwrite or options.resume),
        ),
        resume,
        options.rows_per_shard,
    )
    return pipeline


def embed(options: PipelineOptions) -> PipelineResult:
    """Runs the embed job and checks that it committed, since a runner may report
    success for a graph it did not run whole (DaskRunner, deploy/dask/README.md).

    The job holds OUT's claim (`OUT/_claim.json`) from before it looks at OUT
    (the --resume plan, the launch checks) until it ends, so a second run into
    the same OUT fails fast instead of racing this one to the commit.
    """
    job = options.view_as(JobOptions)
    output = job.output
    # A cheap look first, so that a finished OUT refuses before anything is written there.
    check_output_dir(output, SUCCESS, job.overwrite or options.view_as(EmbedOptions).resume)
    # What is loaded by now (Beam, TensorFlow) outlives the job; frozen while it runs,
    # it is not walked by every full garbage collection.
    gc.freeze()
    try:
        run_id = new_run_id()
        with claimed_output(claim_path(output), run_id, output) as claim:
            result = build_embed_pipeline(options, run_id=run_id, claim=claim).run()
            result.wait_until_finish()
    finally:
        gc.unfreeze()
    if not FileSystems.exists(posixpath.join(output, SUCCESS)) or (
        read_run_record(output)["run_id"] != run_id
    ):
        raise UserError(
            f"the runner reported success but run {run_id} did not commit to {output} "
            "(no _SUCCESS of this run): the runner did not run the whole job"
        )
    return result


def _flattened(pcolls: list[beam.PCollection], label: str) -> beam.PCollection | None:
    """`pcolls` as one PCollection, or None (an absent TableInputs member) if there are
    none: rows with --recluster, staged shards and refits without."""
    return pcolls | label >> beam.Flatten() if pcolls else None


def _job_flags(job: JobOptions, options: EmbedOptions, models: dict[str, ModelRef]) -> dict:
    """The flags that shaped the output, as recorded in _manifest.json."""
    return {
        "input": job.input,
        "manifest": job.manifest,
        "label_from": job.label_from,
        "models": {modality: model.directory for modality, model in models.items()},
        "max_input_bytes": job.max_input_bytes,
        "max_batch_size": options.max_batch_size,
        "max_batch_nnz": options.max_batch_nnz,
        "resume": options.resume,
        "recluster": options.recluster,
        "recluster_seed": options.recluster_seed,
        "recluster_sample": options.recluster_sample,
        "runner": options.view_as(StandardOptions).runner or "DirectRunner",
    }
