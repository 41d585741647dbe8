"""`embedbeam embed`: inputs -> committed Parquet embeddings with cluster assignments.

    ListInputs -> ReadInputs -> Featurize -> EncodeEmbeddings -> AssignClusters
        -> WriteEmbeddings (staged, committed with _SUCCESS and _manifest.json)

Every stage also emits dead letters; they all reach WriteEmbeddings, which
refuses to commit unless inputs seen = rows + dead letters.
"""

from __future__ import annotations

import functools
import os
import posixpath
import time
import uuid

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from pipeline.jobs import check_output_dir, input_source
from pipeline.model_dir import CENTROIDS, ModelInfo, read_model_info
from pipeline.options import EmbedOptions, JobOptions, UserError
from transforms.assign_clusters import AssignClusters
from transforms.centroids import read_centroids
from transforms.encode_embeddings import EncodeEmbeddings
from transforms.featurize import Featurize
from transforms.list_inputs import ListInputs
from transforms.read_inputs import ReadInputs
from transforms.write_embeddings import SUCCESS, OutputModel, RunInfo, WriteEmbeddings


def build_embed_pipeline(
    options: PipelineOptions, pipeline: beam.Pipeline | None = None
) -> beam.Pipeline:
    """The embed job's graph; `embed` runs it, tests pass a TestPipeline."""
    job = options.view_as(JobOptions)
    check_output_dir(job.output, SUCCESS, job.overwrite)
    source = input_source(job)
    options = options.view_as(EmbedOptions)
    if not options.model:
        raise UserError("say which model to embed with: --model DIR")
    try:
        model = read_model_info(options.model)
    except ValueError as error:
        raise UserError(str(error)) from error
    if options.min_batch_size > options.max_batch_size:
        raise UserError("--min-batch-size must not exceed --max-batch-size")

    pipeline = pipeline or beam.Pipeline(options=options)
    refs = pipeline | "ListInputs" >> ListInputs(source)
    raw_inputs, read_failures = refs | "ReadInputs" >> ReadInputs(job.max_input_bytes)
    featurized, featurize_failures = raw_inputs | "Featurize" >> Featurize(
        {model.modality: model.featurizer}
    )
    embedded, encode_failures = featurized | "EncodeEmbeddings" >> EncodeEmbeddings(
        options.model, options.min_batch_size, options.max_batch_size
    )
    load_centroids = functools.partial(read_centroids, posixpath.join(options.model, CENTROIDS))
    rows = embedded | "AssignClusters" >> AssignClusters(load_centroids, model.model_version)
    dead_letters = (
        read_failures,
        featurize_failures,
        encode_failures,
    ) | "FlattenDeadLetters" >> beam.Flatten()
    _ = {
        "rows": rows,
        "dead_letters": dead_letters,
        "inputs": refs,
    } | "WriteEmbeddings" >> WriteEmbeddings(
        job.output,
        OutputModel(model.modality, model.embedding_dim, model.model_version, load_centroids),
        RunInfo(
            run_id=_new_run_id(), started_at=time.time(), options=_job_flags(job, options, model)
        ),
    )
    return pipeline


def embed(options: PipelineOptions) -> None:
    build_embed_pipeline(options).run().wait_until_finish()


def _absolute(path: str) -> str:
    """Local paths made absolute, so the manifest still finds the model from elsewhere."""
    return path if "://" in path else os.path.abspath(path)


def _new_run_id() -> str:
    return f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:8]}"


def _job_flags(job: JobOptions, options: EmbedOptions, model: ModelInfo) -> dict:
    """The flags that shaped the output, as recorded in _manifest.json."""
    return {
        "input": job.input,
        "manifest": job.manifest,
        "label_from": job.label_from,
        "model": _absolute(options.model),
        "modality": model.modality,
        "max_input_bytes": job.max_input_bytes,
        "min_batch_size": options.min_batch_size,
        "max_batch_size": options.max_batch_size,
        "runner": options.view_as(StandardOptions).runner or "DirectRunner",
    }
