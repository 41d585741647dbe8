"""Command-line options of the jobs, as typed PipelineOptions subclasses.

The flags themselves are declared in pipeline/cli/flags.py, without Beam, so
`embedbeam --help` does not import it; each class here adds the same flags to
Beam's parser. Beam's own flags (--runner, --direct_num_workers,
--temp_location, ...) go on the same command line and pass through untouched.
"""

from __future__ import annotations

import argparse

from apache_beam.options.pipeline_options import PipelineOptions

from embedbeam.pipeline.cli import flags


class JobOptions(PipelineOptions):
    """Flags every job has: where inputs come from, where output goes.

    The job-specific classes below hold only their own flags: Beam parses all
    PipelineOptions subclasses with one argparse parser, where a flag defined
    twice would conflict. Read shared flags through `view_as(JobOptions)`.
    """

    @classmethod
    def _add_argparse_args(cls, parser: argparse.ArgumentParser) -> None:
        flags.add_job_args(parser)


class TrainOptions(PipelineOptions):
    """`embedbeam train`: featurizer settings (one flag each), width, clusters, epochs, seed."""

    @classmethod
    def _add_argparse_args(cls, parser: argparse.ArgumentParser) -> None:
        flags.add_train_args(parser)


class EmbedOptions(PipelineOptions):
    """`embedbeam embed`: the model(s), batching, resume, shards and reclustering."""

    @classmethod
    def _add_argparse_args(cls, parser: argparse.ArgumentParser) -> None:
        flags.add_embed_args(parser)


class TuneDimOptions(PipelineOptions):
    """`embedbeam tune-dim`: the widths to try (with TrainOptions for the rest)."""

    @classmethod
    def _add_argparse_args(cls, parser: argparse.ArgumentParser) -> None:
        flags.add_tune_dim_args(parser)
